"""Sales' feedback as data (the export's optional lead_status): the SLA report's rejections by grade and
week of hand-over, monitoring's rejections after a score, and never a feature.

The SLA cases reuse the six hand-made leads of test_sla_report.py, whose moments that file checks
by hand: SQL (hand-over) moments L1 01-07 10:00:01 and L2 01-08 12:00:01 (week of 01-06), L4
01-13 09:00 and L3 01-14 10:00:01 (week of 01-13); L5 and L6 are never handed over. Grades: L1–L3
C, L4 B.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.config.params import default_params
from leadscore.features.contract import read_export
from leadscore.training.monitor import label_scores, write_monitor
from leadscore.training.sla_report import NO_REASON, reasons_table, write_sla_report
from tests.helpers import write_tables
from tests.training.test_sla_report import ACTIVITIES, LEADS, OPPORTUNITIES

SCRIPT = "<script>alert('x')</script> competitor"
# In file order; L2's rows are out of time order on purpose (the first verdict is by time).
STATUS = [
    # L1: a rejection *before* its hand-over (01-07 10:00:01) is not a verdict on the handed-over lead.
    ("L1", "2025-01-07T09:00:00", "rejected", "too early"),
    # L2: "working" is not a verdict; accepted 01-10 comes first, the rejection 01-12 is a later verdict.
    ("L2", "2025-01-12T09:00:00", "rejected", "No budget"),
    ("L2", "2025-01-09T09:00:00", "working", ""),
    ("L2", "2025-01-10T09:00:00", "accepted", ""),
    # L3: disqualified, with a reason a browser must never run.
    ("L3", "2025-01-15T09:00:00", "disqualified", SCRIPT),
    # L4: two verdicts at the same minute: the file's order decides (rejected), recycled is later.
    ("L4", "2025-01-14T10:00:00", "rejected", "Too small"),
    ("L4", "2025-01-14T10:00:00", "recycled", "not now"),
    # L5 never had an SQL moment: its rejection is counted as not handed over.
    ("L5", "2025-01-20T09:00:00", "rejected", "student"),
]


def _status_csv(folder, rows) -> None:
    pd.DataFrame(rows, columns=["lead_id", "changed_at", "status", "reason"]).to_csv(folder / "lead_status.csv",
                                                                                     index=False)


def _params():
    params = default_params()
    params.thresholds.capacity_per_week = 3
    params.features.free_mail_domains = ["gmail.com"]
    return params


@pytest.fixture
def with_status(tmp_path):
    folder = write_tables(tmp_path / "export", LEADS, ACTIVITIES, OPPORTUNITIES)
    _status_csv(folder, STATUS)
    return folder


def test_sla_feedback_by_grade_and_week_by_hand(with_status, tmp_path):
    export = read_export(with_status)
    assert export.dropped["lead_status"] == 0 and len(export.lead_status) == len(STATUS)
    summary = write_sla_report(export, _params(), tmp_path / "sla")
    out = tmp_path / "sla"
    table = pd.read_csv(out / "sla_feedback.csv", keep_default_na=False, na_values=[""])
    rows = {(r["grade"], r["week"]): r for r in table.to_dict("records")}
    counts = ["handed_over", "with_feedback", "accepted", "rejected", "disqualified", "recycled"]
    expected = {
        # B: L4 rejected (the tie goes to the file's first row).
        ("B", "2025-01-13"): ([1, 1, 0, 1, 0, 0], 1.0, 1.0),
        ("B", "all"): ([1, 1, 0, 1, 0, 0], 1.0, 1.0),
        # C, week 01-06: L1 no verdict after its hand-over, L2 accepted first → 0 of 1 rejected.
        ("C", "2025-01-06"): ([2, 1, 1, 0, 0, 0], 0.5, 0.0),
        # C, week 01-13: L3 disqualified — a rejection.
        ("C", "2025-01-13"): ([1, 1, 0, 0, 1, 0], 1.0, 1.0),
        ("C", "all"): ([3, 2, 1, 0, 1, 0], 2 / 3, 1 / 2),
        ("all", "2025-01-06"): ([2, 1, 1, 0, 0, 0], 0.5, 0.0),
        ("all", "2025-01-13"): ([2, 2, 0, 1, 1, 0], 1.0, 1.0),
        # 4 handed over, 3 verdicts, 2 of them rejected or disqualified.
        ("all", "all"): ([4, 3, 1, 1, 1, 0], 3 / 4, 2 / 3),
    }
    assert set(rows) == set(expected)  # no grade A or D row: nothing of theirs was handed over
    for key, (n, share, rate) in expected.items():
        assert [rows[key][c] for c in counts] == n, key
        assert rows[key]["feedback_share"] == pytest.approx(share) and rows[key]["rejection_rate"] == pytest.approx(rate)

    fb = summary["feedback"]
    assert fb["recorded"] is True
    assert [fb[c] for c in counts] == [4, 3, 1, 1, 1, 0] and fb["rejection_rate"] == pytest.approx(2 / 3)
    assert set(fb["by_grade"]) == {"B", "C"}
    assert fb["by_grade"]["C"]["rejection_rate"] == pytest.approx(0.5) and fb["by_grade"]["B"]["rejected"] == 1
    # Nothing lost silently: 8 rows = 1 not handed over (L5) + 1 before the hand-over (L1) + 1 other
    # status (working) + 2 later verdicts (L2's rejection, L4's recycled) + 3 first verdicts.
    assert fb["not_counted"] == {"status_rows": 8, "not_handed_over": 1, "before_hand_over": 1, "later_verdicts": 2,
                                 "other_statuses": {"working": 1}}

    # Reasons of the rejections only (L2's accepted and its later "No budget" are not among them).
    reasons = pd.read_csv(out / "sla_feedback_reasons.csv")
    assert reasons.to_dict("records") == [
        {"grade": "B", "status": "rejected", "reason": "Too small", "count": 1},
        {"grade": "C", "status": "disqualified", "reason": SCRIPT, "count": 1},
        {"grade": "all", "status": "disqualified", "reason": SCRIPT, "count": 1},
        {"grade": "all", "status": "rejected", "reason": "Too small", "count": 1},
    ]
    assert [r["reason"] for r in fb["top_reasons"]] == [SCRIPT, "Too small"]

    # The funnel's "rejected by sales" now counts them: B (L4) 1, C (L3) 1, by week of creation 01-06
    # (L1–L3) 1 and 01-13 (L4–L6) 1.
    funnel = pd.read_csv(out / "sla_funnel.csv", keep_default_na=False, na_values=[""])
    got = {(r["by"], r["group"]): r["rejected_by_sales"] for r in funnel.to_dict("records")}
    assert {k: int(v) for k, v in got.items()} == {("all", "all"): 2, ("grade", "B"): 1, ("grade", "C"): 1,
                                                   ("grade", "D"): 0, ("week", "2025-01-06"): 1,
                                                   ("week", "2025-01-13"): 1}

    page = (out / "sla.html").read_text()
    for table_id in ("feedback-grade", "feedback-week", "feedback-reasons"):
        assert f'id="{table_id}"' in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; competitor" in page
    assert "not recorded" not in page and "has no lead-status history" not in page
    sentence = [s for s in page.split('id="summary"')[1].split("</div>")[0].split("<p>") if "verdict on" in s]
    assert len(sentence) == 1 and "3 of the 4 leads handed over" in sentence[0] and "67 %" in sentence[0]
    assert summary["files"]["feedback"].endswith("sla_feedback.csv")


def test_without_lead_status_feedback_is_not_recorded(tmp_path):
    export = read_export(write_tables(tmp_path / "export", LEADS, ACTIVITIES, OPPORTUNITIES))
    assert "lead_status" not in export.dropped
    summary = write_sla_report(export, _params(), tmp_path / "sla")
    assert summary["feedback"] == {"recorded": False}
    assert not (tmp_path / "sla" / "sla_feedback.csv").exists()
    assert not (tmp_path / "sla" / "sla_feedback_reasons.csv").exists()
    page = (tmp_path / "sla" / "sla.html").read_text()
    assert "Rejected by sales: not recorded in the export, so not reported." in page
    assert 'id="feedback-grade"' not in page


def test_an_empty_lead_status_file_is_recorded_with_no_verdicts(tmp_path):
    # The table is there but empty: recorded (sales gave no verdict), which is not "not recorded".
    folder = write_tables(tmp_path / "export", LEADS, ACTIVITIES, OPPORTUNITIES)
    _status_csv(folder, [])
    summary = write_sla_report(read_export(folder), _params(), tmp_path / "sla")
    fb = summary["feedback"]
    assert fb["recorded"] is True and (fb["handed_over"], fb["with_feedback"]) == (4, 0)
    assert fb["rejection_rate"] is None and fb["top_reasons"] == []
    page = (tmp_path / "sla" / "sla.html").read_text()
    assert "no verdict on any of the 4 leads" in page and "not recorded" not in page


def test_reasons_are_grouped_ignoring_case_and_spacing():
    verdicts = pd.DataFrame({
        "lead_id": list("abcdef"), "grade": ["A", "A", "A", "B", "B", "A"],
        "verdict": ["rejected", "rejected", "rejected", "disqualified", "rejected", "accepted"],
        "reason": ["No budget", "no  budget ", "Student", None, "NO BUDGET", "great fit"]})
    table = reasons_table(verdicts)
    # Grade A: two spellings of "no budget" (shown as the more frequent, here the first of a tie) and
    # one student; the accepted lead's reason is not a rejection reason. B: one without a reason.
    assert table.loc[table["grade"] == "A", ["reason", "count"]].values.tolist() == [["No budget", 2], ["Student", 1]]
    assert table.loc[table["grade"] == "B", ["status", "reason", "count"]].values.tolist() == [
        ["disqualified", NO_REASON, 1], ["rejected", "No budget", 1]]
    assert table.loc[table["grade"] == "all", "count"].tolist() == [3, 1, 1]


def test_sla_cli_prints_the_rejection_rate_by_grade(with_status, tmp_path):
    from leadscore.cli import app

    result = CliRunner().invoke(app, ["sla", "--data", str(with_status), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    line = [ln for ln in result.output.splitlines() if "rejected by sales" in ln]
    assert line and "67 %" in line[0] and "B 100 % of 1" in result.output and "C 50 % of 2" in result.output


# ---------------------------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------------------------

JAN15, JAN20, FEB10 = "2026-01-15", "2026-01-20", "2026-02-10"
# (lead, as_of, scorer, grade)
SCORES = [
    ("M1", JAN15, "model", "A"), ("M2", JAN15, "model", "A"), ("M3", JAN20, "model", "B"), ("M4", JAN20, "model", "B"),
    ("GHOST", JAN15, "model", "A"),  # not in the export: left out of the feedback table
    ("M1", FEB10, "model", "A"), ("M3", FEB10, "model", "B"),
    ("M4", JAN20, "rules", "C"),
]
MONITOR_STATUS = [
    ("M1", "2026-01-20T00:00:00", "accepted", ""),      # after M1's January score, before its February one
    ("M2", "2026-01-10T00:00:00", "rejected", "spam"),  # before the score: not a verdict on it
    ("M2", "2026-02-01T00:00:00", "accepted", ""),
    ("M3", "2026-01-25T00:00:00", "disqualified", "competitor"),  # the January score's first verdict
    ("M3", "2026-03-01T00:00:00", "rejected", "no budget"),       # the February score's
    ("M4", "2026-01-22T00:00:00", "working", ""),       # not a verdict
]


def _labelled(tmp_path):
    leads = [{"lead_id": f"M{i}", "created_at": "2026-01-01T00:00:00", "country": "DE"} for i in range(1, 5)]
    acts = [{"lead_id": "M4", "occurred_at": "2026-06-30T00:00:00", "activity_type": "email_open", "channel": "email"}]
    opps = [{"lead_id": "M1", "created_at": "2026-02-20T00:00:00", "closed_at": "2026-03-20T00:00:00", "stage": "won",
             "amount": 1000}]
    folder = write_tables(tmp_path / "export", leads, acts, opps)
    _status_csv(folder, MONITOR_STATUS)
    export = read_export(folder)
    scores = pd.DataFrame([{"lead_id": lead, "source": "batch", "scorer": scorer, "model_version": "1" if scorer == "model"
                            else "rules:1", "as_of": pd.Timestamp(at), "probability": 0.5, "grade": grade}
                           for lead, at, scorer, grade in SCORES])
    cfg = default_params().features.model_copy(update={"horizon_days": 90})
    return export, label_scores(scores, export, cfg)


def test_monitor_feedback_after_the_score_by_hand(tmp_path):
    export, labelled = _labelled(tmp_path)
    summary = write_monitor(labelled, tmp_path / "m", data_end=export.data_end, horizon_days=90,
                            lead_status=export.lead_status)
    table = pd.read_csv(tmp_path / "m" / "monitor_feedback.csv", keep_default_na=False, na_values=[""])
    rows = {(r["scorer"], r["month"], r["grade"]): r for r in table.to_dict("records")}
    cols = ["scores", "with_feedback", "accepted", "rejected", "disqualified", "recycled"]
    nan = float("nan")
    expected = {
        # January A: M1 accepted 01-20, M2 accepted 02-01 (its 01-10 rejection predates the score).
        ("model", "2026-01", "A"): ([2, 2, 2, 0, 0, 0], 0.0, 0.0),
        # January B: M3 disqualified 01-25 (first after the score, not the later rejection); M4 none.
        ("model", "2026-01", "B"): ([2, 1, 0, 0, 1, 0], 0.5, 1.0),
        ("model", "2026-01", "all"): ([4, 3, 2, 0, 1, 0], 0.25, 1 / 3),  # GHOST left out: 4, not 5
        # February: M1's only verdict was before the score; M3's next verdict is the 03-01 rejection.
        ("model", "2026-02", "A"): ([1, 0, 0, 0, 0, 0], 0.0, nan),
        ("model", "2026-02", "B"): ([1, 1, 0, 1, 0, 0], 1.0, 1.0),
        ("model", "2026-02", "all"): ([2, 1, 0, 1, 0, 0], 0.5, 1.0),
        ("model", "all", "A"): ([3, 2, 2, 0, 0, 0], 0.0, 0.0),
        ("model", "all", "B"): ([3, 2, 0, 1, 1, 0], 2 / 3, 1.0),
        ("model", "all", "all"): ([6, 4, 2, 1, 1, 0], 2 / 6, 2 / 4),
        # The rules are never mixed with the model: M4, no verdict.
        ("rules", "2026-01", "C"): ([1, 0, 0, 0, 0, 0], 0.0, nan),
        ("rules", "2026-01", "all"): ([1, 0, 0, 0, 0, 0], 0.0, nan),
        ("rules", "all", "C"): ([1, 0, 0, 0, 0, 0], 0.0, nan),
        ("rules", "all", "all"): ([1, 0, 0, 0, 0, 0], 0.0, nan),
    }
    assert set(rows) == set(expected)
    for key, (n, share, rate) in expected.items():
        assert [rows[key][c] for c in cols] == n, key
        assert rows[key]["rejected_share"] == pytest.approx(share), key
        assert rows[key]["rejection_rate"] == pytest.approx(rate, nan_ok=True), key

    fb = summary["feedback"]
    assert fb["recorded"] is True
    overall = {(r["scorer"], r["grade"]): r for r in fb["all_months"]}
    assert overall[("model", "all")]["rejected_share"] == pytest.approx(1 / 3)
    assert overall[("rules", "C")]["rejection_rate"] is None  # JSON-safe: no verdict, no rate
    assert any("33 % of the 6 batch model scores" in s for s in fb["sentences"])
    saved = json.loads((tmp_path / "m" / "monitor.json").read_text())
    assert saved["feedback"]["recorded"] is True and "monitor_feedback.csv" in saved["files"]
    page = (tmp_path / "m" / "monitor.html").read_text()
    assert 'id="feedback-table"' in page and "Sales&#x27; feedback after the score" not in page
    assert "Sales' feedback after the score" in page


def test_monitor_without_lead_status(tmp_path):
    export, labelled = _labelled(tmp_path)
    summary = write_monitor(labelled, tmp_path / "m", data_end=export.data_end, horizon_days=90)
    assert summary["feedback"] == {"recorded": False}
    assert not (tmp_path / "m" / "monitor_feedback.csv").exists()
    assert 'id="feedback-table"' not in (tmp_path / "m" / "monitor.html").read_text()


# ---------------------------------------------------------------------------------------------
# Never a feature
# ---------------------------------------------------------------------------------------------


def test_lead_status_is_never_a_feature(demo_dir, params, tmp_path):
    """Sales' verdicts come after the hand-over: the training set is the same with and without them,
    even when the verdicts give the outcome away (accepted exactly for the leads that got a deal)."""
    from leadscore.training.dataset import build_dataset

    plain = tmp_path / "plain"
    shutil.copytree(demo_dir, plain)
    with_verdicts = tmp_path / "with_status"
    shutil.copytree(demo_dir, with_verdicts)
    export = read_export(plain)
    first_deal = export.opportunities.groupby("lead_id")["created_at"].min()
    leads = export.leads.set_index("lead_id")["created_at"]
    at = (leads + pd.Timedelta(days=2)).clip(upper=export.data_end)
    verdict = ["accepted" if lead in first_deal.index else "rejected" for lead in leads.index]
    reason = ["" if v == "accepted" else "not a fit" for v in verdict]
    status = list(zip(leads.index, at.dt.strftime("%Y-%m-%dT%H:%M:%S"), verdict, reason))
    _status_csv(with_verdicts, status)
    assert len(read_export(with_verdicts).lead_status) == len(leads)

    a = build_dataset(plain, params, tmp_path / "ds_plain")
    b = build_dataset(with_verdicts, params, tmp_path / "ds_status")
    rows_a = pd.read_parquet(tmp_path / "ds_plain" / "snapshots.parquet")
    rows_b = pd.read_parquet(tmp_path / "ds_status" / "snapshots.parquet")
    pd.testing.assert_frame_equal(rows_a, rows_b)
    spec_a = json.loads((tmp_path / "ds_plain" / "spec.json").read_text())
    assert spec_a == json.loads((tmp_path / "ds_status" / "spec.json").read_text())
    names = [f["name"] for f in spec_a["features"]]
    assert names and not [n for n in names + list(rows_b.columns)
                          if any(word in n.lower() for word in ("status", "reject", "reason", "verdict"))]
    assert a["features"] == b["features"]
