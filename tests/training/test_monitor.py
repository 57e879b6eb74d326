"""`leadscore monitor`: served scores joined with later outcomes, checked by hand and on the demo."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots, training_snapshots
from leadscore.serving.ledger import Ledger, LedgerEntry, pseudonym
from leadscore.training.monitor import (
    AFTER_HAND_OVER,
    ALL,
    CENSORED,
    NEGATIVE,
    POSITIVE,
    UNKNOWN_LEAD,
    grade_table,
    label_scores,
    monitor_table,
    read_ledger,
    read_scores_file,
    write_monitor,
)
from tests.browser import dump_dom, screenshot
from tests.conftest import ROOT
from tests.helpers import write_tables

KEY = b"monitor-test-key"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARTIFACTS = ROOT / "tests" / "artifacts"

# These scores are labelled with a 90-day horizon (``_f90``: the packaged default is auto); the
# export ends 2026-06-30 (L12's last activity).
JAN, FEB, MAY = datetime(2026, 1, 15), datetime(2026, 2, 1), datetime(2026, 5, 1)
# (lead, as_of, scorer, version, probability, grade, expected outcome, why)
SCORES = [
    # January, model 3: 3 won, 2 not, one lead unknown, one scored after its hand-over.
    ("L1", JAN, "model", "3", 0.90, "A", POSITIVE, "opp 02-10 (26 days) won"),
    ("L2", JAN, "model", "3", 0.75, "A", POSITIVE, "opp 03-01 (45 days) won"),
    ("L6", JAN, "model", "3", 0.30, "C", POSITIVE, "opp 04-01 (76 days ≤ 90) won"),
    ("L3", JAN, "model", "3", 0.70, "B", NEGATIVE, "opp 02-20 lost"),
    ("L4", JAN, "model", "3", 0.20, "D", NEGATIVE, "never an opportunity"),
    ("GHOST", JAN, "model", "3", 0.50, "B", UNKNOWN_LEAD, "not in the export"),
    ("L7", JAN, "model", "3", 0.40, "B", AFTER_HAND_OVER, "opp 01-10, before the as_of"),
    # February, model 4: 1 won, 2 not, one deal still open.
    ("L4", FEB, "model", "4", 0.10, "D", NEGATIVE, "never an opportunity"),
    ("L8", FEB, "model", "4", 0.35, "B", POSITIVE, "opp 03-15 (42 days) won"),
    ("L5", FEB, "model", "4", 0.40, "B", NEGATIVE, "opp 05-15 is 103 days later: outside the horizon"),
    ("L9", FEB, "model", "4", 0.50, "B", CENSORED, "opp 04-10 within the horizon, still open"),
    # May, model 4: 05-01 + 90 days = 07-30 is after the export's end.
    ("L11", MAY, "model", "4", 0.60, "A", CENSORED, "horizon not over at the export's end"),
    # The rules, January: both not won, so AUC is undefined.
    ("L4", JAN, "rules", "rules:1", 0.05, "D", NEGATIVE, "never an opportunity"),
    ("L3", JAN, "rules", "rules:1", 0.20, "C", NEGATIVE, "opp 02-20 lost"),
]


def _f90(params):
    return params.features.model_copy(update={"horizon_days": 90})


def _params90(folder: Path, monkeypatch) -> Path:
    """A params file with a 90-day horizon, and an empty registry: versions 3 and 4 are not loadable,
    so the CLI labels their scores with the file's horizon (and says so)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'empty-registry.db'}")
    path = folder / "params90.yaml"
    path.write_text("features:\n  horizon_days: 90\n")
    return path


def _export(folder: Path) -> Path:
    leads = [{"lead_id": f"L{i}", "created_at": "2025-12-01T00:00:00", "country": "DE"} for i in range(1, 13)]
    opps = [
        {"lead_id": "L1", "created_at": "2026-02-10T00:00:00", "closed_at": "2026-03-10T00:00:00", "stage": "won", "amount": 1000},
        {"lead_id": "L2", "created_at": "2026-03-01T00:00:00", "closed_at": "2026-04-01T00:00:00", "stage": "won", "amount": 1000},
        {"lead_id": "L3", "created_at": "2026-02-20T00:00:00", "closed_at": "2026-03-20T00:00:00", "stage": "lost", "amount": 1000},
        {"lead_id": "L5", "created_at": "2026-05-15T00:00:00", "closed_at": "2026-06-01T00:00:00", "stage": "won", "amount": 1000},
        {"lead_id": "L6", "created_at": "2026-04-01T00:00:00", "closed_at": "2026-05-01T00:00:00", "stage": "won", "amount": 1000},
        {"lead_id": "L7", "created_at": "2026-01-10T00:00:00", "closed_at": "2026-02-10T00:00:00", "stage": "won", "amount": 1000},
        {"lead_id": "L8", "created_at": "2026-03-15T00:00:00", "closed_at": "2026-04-15T00:00:00", "stage": "won", "amount": 1000},
        {"lead_id": "L9", "created_at": "2026-04-10T00:00:00", "closed_at": None, "stage": "open", "amount": 1000},
    ]
    acts = [{"lead_id": "L12", "occurred_at": "2026-06-30T00:00:00", "activity_type": "email_open", "channel": "email"}]
    return write_tables(folder, leads, acts, opps)


def _ledger(url: str) -> Ledger:
    ledger = Ledger(url)
    ledger.record([
        LedgerEntry(lead_key=pseudonym(lead, KEY), as_of=as_of, scored_at=as_of + timedelta(hours=1), scorer=scorer,
                    model_version=version, probability=p, score=int(p * 98) + 1, grade=grade, reasons=[], features={})
        for lead, as_of, scorer, version, p, grade, *_ in SCORES
    ])
    return ledger


@pytest.fixture
def hand_made(tmp_path, params):
    export = read_export(_export(tmp_path / "export"))
    url = f"sqlite:///{tmp_path / 'l.db'}"
    _ledger(url).close()
    return export, url


def _row(table: pd.DataFrame, scorer: str, version: str, month: str) -> pd.Series:
    hit = table.loc[(table["source"] == "api") & (table["scorer"] == scorer) & (table["model_version"] == version)
                    & (table["month"] == month)]
    assert len(hit) == 1, (scorer, version, month, table)
    return hit.iloc[0]


def test_every_served_score_gets_the_training_label(hand_made, params):
    export, url = hand_made
    served = read_ledger(url)
    assert len(served) == len(SCORES) and "lead_id" not in served.columns  # the ledger has pseudonyms only
    labelled = label_scores(served, export, _f90(params), KEY)
    expected = [outcome for *_, outcome, _why in SCORES]
    assert labelled["outcome"].tolist() == expected
    assert labelled["label"].tolist()[:5] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert pd.isna(labelled["lead_id"].iloc[5])  # GHOST: not found
    # A wrong key finds no lead at all: every score is unknown, none silently labelled.
    wrong = label_scores(served, export, _f90(params), b"another-key")
    assert (wrong["outcome"] == UNKNOWN_LEAD).all()
    with pytest.raises(ValueError, match="LEADSCORE_PSEUDONYM_KEY"):
        label_scores(served, export, _f90(params), None)


def test_labels_agree_with_training_snapshots_on_their_grid(hand_made, params):
    # Every labelled training snapshot of the export, scored as if served, gets the snapshot's label.
    export, _ = hand_made
    snaps, _ = training_snapshots(export, _f90(params))
    scores = snaps.assign(source="api", scorer="model", model_version="1", probability=0.5, grade="B")
    labelled = label_scores(scores.drop(columns="label"), export, _f90(params))
    assert labelled["label"].tolist() == snaps["label"].astype(float).tolist()


def test_metrics_per_month_and_version_by_hand(hand_made, params):
    export, url = hand_made
    labelled = label_scores(read_ledger(url), export, _f90(params), KEY)
    table = monitor_table(labelled)

    jan = _row(table, "model", "3", "2026-01")
    # 7 scores: 5 labelled (3 won), 1 unknown lead, 1 after hand-over.
    assert (jan.scores, jan.labelled, jan.positives, jan.unknown_lead, jan.after_hand_over, jan.censored) == (7, 5, 3, 1, 1, 0)
    # Won .90 .75 .30 vs not won .70 .20: .90 and .75 beat both (4 pairs), .30 beats .20 only (1): 5/6.
    assert jan.roc_auc == pytest.approx(5 / 6)
    # Predicted (.90 + .75 + .30 + .70 + .20) / 5 = 2.85 / 5 = .57; observed 3/5 = .6.
    assert jan.mean_predicted == pytest.approx(0.57) and jan.observed_rate == pytest.approx(0.6)
    # ECE, 5 rows in 5 bins of one: mean |p - y| = (.10 + .25 + .70 + .70 + .20) / 5 = 1.95 / 5 = .39.
    assert jan.ece == pytest.approx(0.39)

    feb = _row(table, "model", "4", "2026-02")
    # 4 scores: L9's deal is open (censored); won .35 vs not won .10 and .40: beats one of two = 1/2.
    assert (feb.scores, feb.labelled, feb.positives, feb.censored) == (4, 3, 1, 1)
    assert feb.roc_auc == pytest.approx(0.5)
    assert feb.mean_predicted == pytest.approx((0.10 + 0.35 + 0.40) / 3) and feb.observed_rate == pytest.approx(1 / 3)

    may = _row(table, "model", "4", "2026-05")
    # Only a censored score: nothing labelled, no AUC, no rates.
    assert (may.scores, may.labelled, may.censored) == (1, 0, 1)
    assert pd.isna(may.roc_auc) and pd.isna(may.mean_predicted)  # empty in the CSV, null in the JSON

    v4 = _row(table, "model", "4", ALL)  # February and May together
    assert (v4.scores, v4.labelled, v4.positives, v4.censored) == (5, 3, 1, 2) and v4.roc_auc == pytest.approx(0.5)

    everything = _row(table, "model", ALL, ALL)
    # 12 model scores, 8 labelled, 4 won. Won .90 .75 .30 .35 vs not won .70 .20 .10 .40:
    # .90 and .75 beat all four (8), .30 and .35 beat .20 and .10 (2 + 2): 12 / 16 = .75.
    assert (everything.scores, everything.labelled, everything.positives) == (12, 8, 4)
    assert (everything.censored, everything.unknown_lead, everything.after_hand_over) == (2, 1, 1)
    assert everything.roc_auc == pytest.approx(0.75)
    assert everything.mean_predicted == pytest.approx((2.85 + 0.85) / 8) and everything.observed_rate == pytest.approx(0.5)
    assert _row(table, "model", ALL, "2026-01").roc_auc == pytest.approx(5 / 6)  # one version in January

    rules = _row(table, "rules", "rules:1", "2026-01")
    # The rules are never mixed with the model: 2 scores, both not won, so AUC is undefined.
    assert (rules.scores, rules.labelled, rules.positives) == (2, 2, 0) and pd.isna(rules.roc_auc)
    assert rules.mean_predicted == pytest.approx(0.125) and rules.observed_rate == 0


def test_win_rate_per_grade_by_hand(hand_made, params):
    export, url = hand_made
    grades = grade_table(label_scores(read_ledger(url), export, _f90(params), KEY))

    def rates(version, month):
        part = grades.loc[(grades["scorer"] == "model") & (grades["model_version"] == version) & (grades["month"] == month)]
        return {g.grade: (g.labelled, g.wins) for g in part.itertuples()}

    # January (labelled only): A = L1, L2 both won; B = L3 lost; C = L6 won; D = L4 not won.
    # GHOST (B) and L7 (B) are not labelled, so they do not count.
    assert rates("3", "2026-01") == {"A": (2, 2), "B": (1, 0), "C": (1, 1), "D": (1, 0)}
    # All months: February adds B = L8 won, L5 not; D = L4 not won. L9 (B) and L11 (A) are censored.
    assert rates(ALL, ALL) == {"A": (2, 2), "B": (3, 1), "C": (1, 1), "D": (2, 0)}
    row = grades.loc[(grades["scorer"] == "model") & (grades["model_version"] == ALL) & (grades["month"] == ALL)
                     & (grades["grade"] == "B")].iloc[0]
    assert row.win_rate == pytest.approx(1 / 3) and row.mean_predicted == pytest.approx((0.70 + 0.35 + 0.40) / 3)


def test_cli_on_the_hand_made_export_with_a_batch_file(hand_made, tmp_path, monkeypatch):
    export, url = hand_made
    monkeypatch.setenv("LEADSCORE_PSEUDONYM_KEY", KEY.decode())
    batch = tmp_path / "scores.csv"
    pd.DataFrame({"lead_id": ["L1", "L3", "NOPE", "L2"], "as_of": ["2026-01-15T00:00:00"] * 3 + ["not a date"],
                  "probability": [0.8, 0.1, 0.5, 0.5], "score": [80, 10, 50, 50], "grade": ["A", "D", "B", "B"],
                  "scorer": "model", "model_version": "3"}).to_csv(batch, index=False)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["monitor", "--data", str(tmp_path / "export"), "--ledger", url,
                                      "--scores", str(batch), "--out", str(out),
                                      "--params", str(_params90(tmp_path, monkeypatch))])
    assert result.exit_code == 0, result.output
    assert "1 row(s)" in result.output and "line 5" in result.output  # the bad date, counted
    table = pd.read_csv(out / "monitor.csv", dtype={"model_version": str, "month": str})
    batch_all = table.loc[(table["source"] == "batch") & (table["model_version"] == ALL) & (table["month"] == ALL)].iloc[0]
    # L1 won (.8), L3 lost (.1): AUC 1; NOPE is not in the export.
    assert (batch_all.scores, batch_all.labelled, batch_all.unknown_lead, batch_all.roc_auc) == (3, 2, 1, 1.0)
    summary = json.loads((out / "monitor.json").read_text())
    assert summary["counts"]["api"] == {"positive": 4, "negative": 6, "censored": 2, "after_hand_over": 1,
                                        "unknown_lead": 1, "scores": 14}
    assert any(s.startswith("In 2026-01, 5 served model scores were labelled (3 won); AUC 0.83; grade A leads won "
                            "100 % of the time, B 0 %, C 100 %, D 0 %") for s in summary["sentences"])
    page = (out / "monitor.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")


def test_cli_says_when_no_score_matches_the_export(hand_made, tmp_path, monkeypatch):
    _, url = hand_made
    monkeypatch.setenv("LEADSCORE_PSEUDONYM_KEY", "not-the-service-key")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["monitor", "--data", str(tmp_path / "export"), "--ledger", url, "--out", str(out),
                                      "--params", str(_params90(tmp_path, monkeypatch))])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "monitor.json").read_text())
    assert summary["counts"]["api"]["unknown_lead"] == len(SCORES)
    assert any("None of the served scores matched" in s for s in summary["sentences"])


def test_an_empty_or_missing_ledger_still_writes_a_report(tmp_path, hand_made, params):
    export, _ = hand_made
    served = read_ledger(f"sqlite:///{tmp_path / 'nowhere' / 'ledger.db'}")
    assert served.empty and not (tmp_path / "nowhere").exists()  # reading never creates a ledger
    summary = write_monitor(label_scores(served, export, _f90(params), KEY), tmp_path / "empty",
                            data_end=export.data_end, horizon_days=90)
    assert summary["counts"] == {} and "no scores to check" in summary["sentences"][0]
    assert (tmp_path / "empty" / "reliability.png").read_bytes()[:8] == PNG_MAGIC


def test_a_scores_file_without_the_columns_names_them(tmp_path):
    bad = tmp_path / "scores.csv"
    pd.DataFrame({"lead_id": ["L1"], "p": [0.1]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"scores.csv: .*missing as_of, probability, grade, scorer, model_version"):
        read_scores_file(bad)


# ---------------------------------------------------------------------------------------------
# The demo, end to end: served through the scoring core, checked against the snapshot labels
# ---------------------------------------------------------------------------------------------


def test_monitor_on_the_demo(trained, demo_dir, params, tmp_path, monkeypatch):
    from leadscore.config.settings import Settings
    from leadscore.serving.core import ScoringCore
    from leadscore.serving.schemas import ScoreRequest
    from tests.serving.test_service import request_for

    # A ledger of its own, so other tests' scores in the session ledger don't change the counts.
    monkeypatch.setenv("LEADSCORE_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    export = read_export(demo_dir)
    # Two cut-offs 30 days apart whose label horizon (the model's) is over by the export's end.
    horizon = trained["model"].info["horizon_days"]
    as_ofs = [export.data_end.normalize() - pd.Timedelta(days=d) for d in (horizon + 60, horizon + 30)]
    # A generous deadline: 400 leads in one request must be answered by the model, not the rules.
    core = ScoringCore(Settings(cache_dir=tmp_path / "cache", deadline_ms=60_000))
    served = []
    for as_of in as_ofs:
        # Leads of the age the model learned from (the oldest open leads are cold and almost never win).
        open_leads = scoring_snapshots(export, as_of).merge(export.leads[["lead_id", "created_at"]], on="lead_id")
        young = open_leads.loc[as_of - open_leads["created_at"] <= pd.Timedelta(days=params.features.max_snapshot_age_days)]
        ids = young["lead_id"].sample(n=min(400, len(young)), random_state=0).tolist()
        answers = asyncio.run(core.score(ScoreRequest.model_validate(request_for(export, ids, as_of.to_pydatetime()))))
        served += [(a.out.lead_id, as_of, a.out.probability) for a in answers]
    core.ledger.close()

    out = tmp_path / "monitor"
    result = CliRunner().invoke(app, ["monitor", "--data", str(demo_dir), "--out", str(out),
                                      "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 0, result.output
    for name in ("monitor.csv", "monitor_grades.csv", "monitor.json", "monitor.html"):
        assert (out / name).stat().st_size > 0
    for name in ("reliability.png", "win_rate_by_grade.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC

    # The labelled count is what the training snapshots say about these (lead, as_of): computed here
    # on a copy of the export whose snapshots fall exactly on the two as_of (30 days apart).
    # … with the served model's label horizon (model.info), as the monitor does
    truth = _snapshot_labels(export, params, [(lead, as_of) for lead, as_of, _ in served],
                             trained["model"].info["horizon_days"])
    table = pd.read_csv(out / "monitor.csv", dtype={"model_version": str, "month": str})
    total = table.loc[(table["source"] == "api") & (table["model_version"] == ALL) & (table["month"] == ALL)]
    assert int(total["scores"].sum()) == len(served) > 300
    assert int(total["labelled"].sum()) == len(truth)
    assert int(total["positives"].sum()) == int(truth.sum())
    assert int(total["unknown_lead"].sum()) == 0

    summary = json.loads((out / "monitor.json").read_text())
    latest = summary["headline"][-1]  # the last month of the served model's scores
    assert latest.startswith(f"In {as_ofs[-1]:%Y-%m}, ") and latest in " ".join(result.output.split())
    model_total = total.loc[total["scorer"] == "model"].iloc[0]
    assert model_total["positives"] > 0 and 0.5 < model_total["roc_auc"] <= 1

    html_file = out / "monitor.html"
    dom = dump_dom(html_file)
    assert latest.split(";")[0] in dom
    assert 'id="monitor-table"' in dom and 'id="grade-table"' in dom and dom.count("data:image/png;base64,") == 2
    png = screenshot(html_file, ARTIFACTS / "monitor.png", width=1100, height=1400)
    assert png.stat().st_size > 30_000


def _snapshot_labels(export, params, pairs, horizon_days: int) -> pd.Series:
    """The label training_snapshots gives each (lead, as_of), from a copy of the export whose leads
    were created exactly 0 or 30 days before the as_of's grid, snapshotted every 30 days."""
    wanted = pd.DataFrame(pairs, columns=["lead_id", "as_of"])
    start = wanted["as_of"].min()
    leads = export.leads[["lead_id", "created_at"]].assign(created_at=start)
    shifted = type(export)(leads=leads, activities=export.activities, opportunities=export.opportunities)
    # Keep the export's end: the copy's leads are older than before, so the end cannot move.
    assert shifted.data_end == export.data_end
    cfg = params.features.model_copy(update={"snapshot_every_days": 30, "max_snapshot_age_days": 30})
    snaps, _ = training_snapshots(shifted, cfg, horizon_days=horizon_days)
    got = wanted.merge(snaps, on=["lead_id", "as_of"], how="inner")
    return got["label"]
