"""Every scored row, on the demo and on each real dataset, carries one consistent answer:
``recommendation == hand_to_sales`` if and only if ``sales_ready`` (if and only if grade A/B), and
its German texts hold no English or code words."""

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.config.params import load_params
from leadscore.features.flat import load_flat
from leadscore.models.rules import load_rules
from leadscore.training.flat_eval import find_rules, flat_rule_scorer

ROOT = Path(__file__).parents[2]
SHARED_DATA = ROOT / ".." / "shared" / "data"
# English words and raw codes that must not appear in a German text a rep reads.
ENGLISH = re.compile(
    r"\b(unknown|yes|no|none|the|and|of|with|days|employees|visits?|page|pricing|trade fair|log-odds|ready|"
    r"nurture|hand to sales|missing|not given|company|industry|source|country)\b|\b[a-z]+_[a-z_]+\b",
    re.IGNORECASE,
)


def _check(frame: pd.DataFrame, texts_de: list[str]) -> None:
    ready = frame["sales_ready"].astype(bool)
    assert ((frame["recommendation"] == "hand_to_sales") == ready).all()
    assert (frame["grade"].isin(["A", "B"]) == ready).all()
    leaks = [(m.group(0), t) for t in texts_de for m in [ENGLISH.search(t)] if m]
    assert not leaks, leaks[:10]


def test_demo_score_file_one_answer_in_both_languages(trained, demo_dir, tmp_path):
    model_dir = trained["model_dir"]
    frames = {}
    for lang in ("en", "de"):
        out = tmp_path / f"scores_{lang}.csv"
        result = CliRunner().invoke(app, ["score", "--data", str(demo_dir), "--as-of", "2026-06-01",
                                          "--out", str(out), "--model-dir", str(model_dir), "--language", lang])
        assert result.exit_code == 0, result.output
        frames[lang] = pd.read_csv(out)
    de, en = frames["de"], frames["en"]
    assert len(de) > 100 and de["recommendation_text"].notna().all()
    assert (de["recommendation"] == en["recommendation"]).all() and (de["recommendation_text"] != en["recommendation_text"]).all()
    _check(de, de["recommendation_text"].tolist() + de["reasons"].dropna().tolist())
    _check(en, [])


@pytest.mark.parametrize("name", ["x_education", "olist_funnel", "bank_marketing"])
def test_real_dataset_rows_one_answer(name):
    spec = ROOT / "specs" / f"{name}.yaml"
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not available")
    data = load_flat(spec, SHARED_DATA)
    scorer = flat_rule_scorer(load_rules(find_rules(spec, None)), data, load_params(), str(spec))
    ids = [str(i) for i in range(len(data.features))]
    for lang in ("de", "en"):
        results = scorer.score_frame(data.features.reset_index(drop=True), ids, top_k=3, lang=lang)
        frame = pd.DataFrame({"sales_ready": [r.sales_ready for r in results], "grade": [r.grade for r in results],
                              "recommendation": [r.recommendation for r in results]})
        texts = [r.recommendation_text for r in results] + [x.text for r in results for x in r.reasons]
        _check(frame, texts if lang == "de" else [])
        assert frame["sales_ready"].any() and not frame["sales_ready"].all()


def test_the_cli_speaks_the_team_glossary_of_its_params_file(tmp_path):
    from leadscore.cli import _params
    from leadscore.features.catalog import describe, use_glossary

    path = tmp_path / "team.yaml"
    path.write_text("glossary:\n  fields: {}\n  values:\n    industry:\n      mining: {en: Mining, de: Bergbau}\n")
    try:
        _params(path)
        assert describe("industry", "mining", "de") == "Branche: Bergbau"
    finally:
        use_glossary(None)
    assert "Bergbau" not in describe("industry", "mining", "de")
