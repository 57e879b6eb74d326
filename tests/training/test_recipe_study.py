"""The recipe study (scripts/recipe_study.py) and the default recipe it chose for params.yaml."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from leadscore.config.params import ParamsError, default_params, load_params
from tests.conftest import ROOT

RESULT = ROOT / "docs" / "recipe_study.json"
TABLE = ROOT / "docs" / "recipe_study.md"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("recipe_study", ROOT / "scripts" / "recipe_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_recipe_becomes_lightgbm_settings(study):
    params = default_params()
    groups = ["fit", "interest", "fit", "interest", "interest"]
    additive = study.recipe_params(params, {"interactions": "per_feature"}, groups).train
    assert additive.lgbm["interaction_constraints"] == [[0], [1], [2], [3], [4]]
    split = study.recipe_params(params, {"interactions": "fit_interest", "monotone": False}, groups).train
    assert split.lgbm["interaction_constraints"] == [[0, 2], [1, 3, 4]]
    assert split.monotone_increasing == [] and split.monotone_decreasing == []
    old = study.recipe_params(params, {"lgbm_only": {}, "early_stopping_rounds": 50}, groups).train
    assert set(old.lgbm) <= {"objective", "verbose", "num_threads"} and old.early_stopping_rounds == 50
    # The study never changes the parameters it was given.
    assert "interaction_constraints" not in params.train.lgbm and params.train.monotone_increasing
    with pytest.raises(ValueError, match="unknown interaction rule"):
        study.recipe_params(params, {"interactions": "pairs"}, groups)


def test_linear_trees_are_not_eligible_because_nothing_explains_them(study):
    """The service explains every score with TreeSHAP; neither ours nor LightGBM's works on linear leaves."""
    check = study.explanation_check(default_params())
    assert check["FastTreeShap"].startswith("fails") and "linear" in check["FastTreeShap"]
    assert check["pred_contrib"].startswith("fails")


def test_the_budget_names_a_holdout_the_search_never_sees(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump({"study": {"holdout_seeds": [99]}}))
    with pytest.raises(ParamsError, match=r"study: .*holdout_seeds must be some, not all, of demo_seeds \[42, 7, 2026\], found \[99\]"):
        load_params(bad)
    everything = default_params().study.demo_seeds
    bad.write_text(yaml.safe_dump({"study": {"holdout_seeds": everything}}))
    with pytest.raises(ParamsError, match="holdout_seeds"):
        load_params(bad)


def _result() -> dict:
    if not RESULT.exists():
        pytest.skip("docs/recipe_study.json is not there (run scripts/recipe_study.py)")
    return json.loads(RESULT.read_text())


def test_the_shipped_recipe_is_the_studys_winner(study):
    """params.yaml's train section is the study's winner applied to the recipe the study started from."""
    result = _result()
    winner = result["candidates"][result["winner"]]
    assert winner["eligible"], winner["eligibility"]
    shipped = default_params()
    keys = ("lgbm", "monotone_increasing", "monotone_decreasing", "early_stopping_rounds", "num_boost_round")
    started = shipped.model_copy(update={"train": shipped.train.model_copy(
        update={k: result["train"][k] for k in keys})})
    # Interaction limits are index lists per export: a winner with them needs a hook in fit_model.
    assert "interactions" not in winner["recipe"]
    expected = study.recipe_params(started, winner["recipe"], []).train
    assert {k: getattr(shipped.train, k) for k in keys} == {k: getattr(expected, k) for k in keys}


def test_the_winner_has_the_best_mean_auc_of_the_eligible_recipes():
    result = _result()
    cands = result["candidates"]
    eligible = [n for n, c in cands.items() if c.get("eligible")]
    best = max(eligible, key=lambda n: cands[n]["summary"]["mean_roc_auc"])
    assert result["winner"] == best
    # Every finalist was measured on every dataset, the held-out seeds included, with intervals.
    for name in result["finalists"]:
        assert set(cands[name]["results"]) == set(result["datasets"])
        assert all(r.get("bootstrap", 0) > 0 for r in cands[name]["results"].values() if "skipped" not in r)


def test_the_table_is_rendered_from_the_json(study):
    result = _result()
    text = study.render(result)
    assert text == TABLE.read_text(), "docs/recipe_study.md is stale: run scripts/recipe_study.py --table-only"
    assert f"**Chosen default: `{result['winner']}`**" in text
    for name in result["datasets"]:
        assert f"| {name}" in text
