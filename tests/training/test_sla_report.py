"""The SLA report (training/sla_report.py): moments, funnel, delivery, follow-up and stage value
computed by hand on six leads scored with the default rules (models/default_sla.yaml), then the demo."""

import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.config.params import default_params
from leadscore.features.contract import read_export
from leadscore.models.policy import rule_scorer
from leadscore.models.rules import Rule
from leadscore.training.sla_report import lead_moments, rules_rising_with_time, write_sla_report
from tests.helpers import write_tables
from tests.training.test_monitor_cli import _renders

T = pd.Timestamp
# Fit points of the default rules: 500 employees 15, a CEO 20, Germany (DACH) 10, software 10 = 55
# (an MQL at creation: mql 50; sql 75). Interest: demo 30, trial 25, contact form 20, pricing 5 each.
FIT55 = {"email": "x@acme.de", "industry": "software", "employees": 500, "country": "DE", "job_title": "CEO"}
LEADS = [
    # L1: 55 at creation → MQL 01-06 09:00 (grade B). Demo 01-07 10:00 → 85 → SQL 10:00:01.
    #     Sales call 10 minutes later → within 30 minutes. Opportunity won, 30,000.
    {"lead_id": "L1", "created_at": "2025-01-06T09:00:00", **FIT55},
    # L2: 55 → MQL at creation (B). Contact form 01-08 12:00 → 75 → SQL 12:00:01. Call 5 h later. Lost.
    {"lead_id": "L2", "created_at": "2025-01-07T09:00:00", **FIT55},
    # L3: 80 employees 8, marketing manager 10, France (EU) 5, software 10 = 33 (C). Pricing page → 38;
    #     trial 01-10 10:00 → 63 → MQL (grade B there); demo 01-14 10:00 → 93 → SQL (week of 01-13).
    #     Call 3 days later. Won, 50,000.
    {"lead_id": "L3", "created_at": "2025-01-08T09:00:00", "email": "y@mid.fr", "industry": "software",
     "employees": 80, "country": "FR", "job_title": "Marketing Manager"},
    # L4: 55 + budget 10 + buying within 3 months 10 = 75 → MQL and SQL at creation (grade A), no
    #     activity at all, never called.
    {"lead_id": "L4", "created_at": "2025-01-13T09:00:00", **FIT55, "budget_confirmed": "yes",
     "purchase_timeframe": "<3 months"},
    # L5: working student (-40, exclusion) + 500 employees 15 + DE 10 + software 10 + free mail -15 = -20.
    #     Demo → 10, trial → 35, contact form 01-16 10:00 → 55 → MQL (grade D: excluded); pricing ×3 → 70,
    #     webinar ×2 → 86 ≥ 75 but excluded: never SQL, so never SAL even though sales calls.
    {"lead_id": "L5", "created_at": "2025-01-13T10:00:00", "email": "s@gmail.com", "industry": "software",
     "employees": 500, "country": "DE", "job_title": "Werkstudent"},
    # L6: 500 employees 15, consultant 0, DE 10, software 10 = 35; 2 e-mail clicks → 39 (grade C). Its
    #     opportunity (01-20) comes first; a demo on 01-22 (→ 69) is sales' data and not evaluated: never
    #     MQL, yet won (20,000) — a later stage without the earlier ones.
    {"lead_id": "L6", "created_at": "2025-01-14T09:00:00", "email": "c@cons.de", "industry": "software",
     "employees": 500, "country": "DE", "job_title": "Consultant"},
]


def _act(lead, at, kind, channel="web"):
    return {"lead_id": lead, "occurred_at": at, "activity_type": kind, "channel": channel}


ACTIVITIES = [
    _act("L1", "2025-01-07T10:00:00", "demo_request"),
    _act("L1", "2025-01-07T10:10:01", "sales_call", "phone"),
    _act("L2", "2025-01-08T12:00:00", "contact_form"),
    _act("L2", "2025-01-08T17:00:01", "sales_call", "phone"),
    _act("L3", "2025-01-09T10:00:00", "pricing_page_view"),
    _act("L3", "2025-01-10T10:00:00", "trial_signup"),
    _act("L3", "2025-01-14T10:00:00", "demo_request"),
    _act("L3", "2025-01-17T10:00:01", "sales_call", "phone"),
    _act("L5", "2025-01-14T10:00:00", "demo_request"),
    _act("L5", "2025-01-15T10:00:00", "trial_signup"),
    _act("L5", "2025-01-16T10:00:00", "contact_form"),
    *[_act("L5", f"2025-01-17T1{i}:00:00", "pricing_page_view") for i in range(3)],
    *[_act("L5", f"2025-01-18T1{i}:00:00", "webinar_attendance") for i in range(2)],
    _act("L5", "2025-01-20T10:00:00", "sales_call", "phone"),
    _act("L6", "2025-01-15T10:00:00", "email_click", "email"),
    _act("L6", "2025-01-16T10:00:00", "email_click", "email"),
    _act("L6", "2025-01-22T10:00:00", "demo_request"),
]
OPPORTUNITIES = [
    {"lead_id": "L1", "created_at": "2025-01-20T00:00:00", "closed_at": "2025-02-10T00:00:00", "stage": "won", "amount": 30000},
    {"lead_id": "L2", "created_at": "2025-01-21T00:00:00", "closed_at": "2025-02-01T00:00:00", "stage": "lost", "amount": 10000},
    {"lead_id": "L3", "created_at": "2025-01-27T00:00:00", "closed_at": "2025-02-12T00:00:00", "stage": "won", "amount": 50000},
    # The export ends at 2025-02-15 12:00 (a Saturday): its last week is incomplete.
    {"lead_id": "L6", "created_at": "2025-01-20T00:00:00", "closed_at": "2025-02-15T12:00:00", "stage": "won", "amount": 20000},
]


@pytest.fixture
def hand_made(tmp_path):
    folder = write_tables(tmp_path / "export", LEADS, ACTIVITIES, OPPORTUNITIES)
    params = default_params()
    params.thresholds.capacity_per_week = 3
    params.features.free_mail_domains = ["gmail.com"]  # the default params name none
    return read_export(folder), params


def test_default_rules_never_raise_points_without_an_activity():
    params = default_params()
    scorer = rule_scorer(params.features)
    assert rules_rising_with_time(scorer) == []
    # A rule that gives points for age would: it is named as a limitation.
    aged = Rule(feature="days_since_first_activity", min=30, points=5, label="Long-standing interest")
    scorer.config = scorer.config.model_copy(update={"rules": [*scorer.config.rules, aged]})
    scorer.groups = [*scorer.groups, "interest"]
    assert rules_rising_with_time(scorer) == ["Long-standing interest"]


def test_moments_by_hand(hand_made):
    export, params = hand_made
    m = lead_moments(export, params, rule_scorer(params.features)).set_index("lead_id")
    assert len(m) == 6
    s = pd.Timedelta(seconds=1)
    mql = m["mql_at"]
    assert mql["L1"] == T("2025-01-06 09:00") and mql["L2"] == T("2025-01-07 09:00")
    assert mql["L3"] == T("2025-01-10 10:00") + s and mql["L4"] == T("2025-01-13 09:00")
    assert mql["L5"] == T("2025-01-16 10:00") + s and pd.isna(mql["L6"])
    sql = m["sql_at"]
    assert sql["L1"] == T("2025-01-07 10:00") + s and sql["L2"] == T("2025-01-08 12:00") + s
    assert sql["L3"] == T("2025-01-14 10:00") + s and sql["L4"] == T("2025-01-13 09:00")
    assert sql[["L5", "L6"]].isna().all()
    assert m["sal_at"]["L1"] == T("2025-01-07 10:10:01") and m["sal_at"]["L3"] == T("2025-01-17 10:00:01")
    assert m["sal_at"][["L4", "L5", "L6"]].isna().all()
    # grades on the total points (A 100, B 75 = sql, C 50); L5 is an exclusion
    assert m["grade"].to_dict() == {"L1": "C", "L2": "C", "L3": "C", "L4": "B", "L5": "D", "L6": "D"}
    assert m["points"].to_dict() == {"L1": 55, "L2": 55, "L3": 63, "L4": 75, "L5": 55, "L6": 39}
    assert m["week"].dt.strftime("%Y-%m-%d").tolist() == ["2025-01-06"] * 3 + ["2025-01-13"] * 3


def test_report_by_hand(hand_made, tmp_path):
    export, params = hand_made
    summary = write_sla_report(export, params, tmp_path / "sla")
    out = tmp_path / "sla"
    funnel = pd.read_csv(out / "sla_funnel.csv", keep_default_na=False, na_values=[""])
    stages = ["lead", "mql", "sql", "sal", "opportunity", "won"]
    rows = {(r["by"], r["group"]): r for r in funnel.to_dict("records")}
    # Reached: MQL L1–L5, SQL L1–L4, SAL L1–L3, opportunity L1, L2, L3, L6, won L1, L3, L6.
    assert [rows[("all", "all")][s] for s in stages] == [6, 5, 4, 3, 4, 3]
    assert summary["funnel"] == dict(zip(stages, [6, 5, 4, 3, 4, 3]))
    # Conversions: 5/6; SQL and MQL 4 / MQL 5; SAL and SQL 3/4; opportunity and SAL 3/3; won and opp 3/4.
    assert [rows[("all", "all")][f"conv_{s}"] for s in stages[1:]] == pytest.approx([5 / 6, 4 / 5, 3 / 4, 1.0, 3 / 4])
    assert ("grade", "A") not in rows or [rows[("grade", "A")][s] for s in stages] == [0] * 6
    assert [rows[("grade", "B")][s] for s in stages] == [1, 1, 1, 0, 0, 0]
    assert [rows[("grade", "C")][s] for s in stages] == [3, 3, 3, 3, 3, 2]
    assert [rows[("grade", "D")][s] for s in stages] == [2, 1, 0, 0, 1, 1]
    assert rows[("grade", "D")]["conv_mql"] == 0.5 and rows[("grade", "D")]["conv_sql"] == 0
    assert [rows[("week", "2025-01-06")][s] for s in stages] == [3, 3, 3, 3, 3, 2]
    assert [rows[("week", "2025-01-13")][s] for s in stages] == [3, 2, 1, 0, 1, 1]
    assert set(funnel["rejected_by_sales"]) == {"not recorded"}

    # SQL moments: L1 01-07, L2 01-08 (week 01-06); L4 01-13, L3 01-14 (week 01-13); then nothing.
    weekly = pd.read_csv(out / "sla_weekly.csv")
    assert weekly["week"].tolist() == ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27", "2025-02-03",
                                       "2025-02-10"]
    assert weekly["delivered"].tolist() == [2, 2, 0, 0, 0, 0]
    assert weekly["committed"].tolist() == [3] * 6 and weekly["difference"].tolist() == [-1, -1, -3, -3, -3, -3]
    assert weekly["complete"].tolist() == [True] * 5 + [False]
    assert summary["weeks"] == 5 and summary["weeks_below_commitment"] == 5
    assert summary["delivered_per_week"] == pytest.approx(4 / 5)

    # Follow-up of the 4 SQL leads: 10 min, 5 h, 3 days, never.
    follow = pd.read_csv(out / "sla_followup.csv").set_index("week")
    assert follow.loc["all", ["sql_leads", "within_30min", "within_1day", "later", "never"]].tolist() == [4, .25, .5, .25, .25]
    assert follow.at["all", "median_hours"] == pytest.approx(5.0)
    assert follow.loc["2025-01-06", ["within_30min", "within_1day", "later", "never"]].tolist() == [.5, 1, 0, 0]
    assert follow.at["2025-01-06", "median_hours"] == pytest.approx((10 / 60 + 5) / 2)
    assert follow.loc["2025-01-13", ["within_30min", "within_1day", "later", "never"]].tolist() == [0, 0, .5, .5]
    assert follow.at["2025-01-13", "median_hours"] == pytest.approx(72.0)

    # Won: L1 30,000, L3 50,000, L6 20,000. Value = win rate × average won amount of those that reached it.
    value = pd.read_csv(out / "sla_value.csv").set_index("stage")
    expected = {  # (reached, won, win rate, avg won amount)
        "Lead": (6, 3, 3 / 6, 100_000 / 3), "MQL": (5, 2, 2 / 5, 40_000), "SQL": (4, 2, 2 / 4, 40_000),
        "SAL": (3, 2, 2 / 3, 40_000), "Opportunity": (4, 3, 3 / 4, 100_000 / 3), "Won": (3, 3, 1.0, 100_000 / 3),
    }
    for stage, (n, won, rate, avg) in expected.items():
        row = value.loc[stage]
        assert (row["reached"], row["won"]) == (n, won)
        assert row["win_rate"] == pytest.approx(rate) and row["avg_won_amount"] == pytest.approx(avg)
        assert row["value_per_lead"] == pytest.approx(rate * avg)
    assert summary["value_per_lead"]["SAL"] == pytest.approx(80_000 / 3)

    page = (out / "sla.html").read_text()
    assert "derived from the export" in page.split('id="summary"')[1].split("</p>")[0]
    for table_id in ("funnel-grade", "funnel-week", "weekly", "followup", "value"):
        assert f'id="{table_id}"' in page
    assert "not recorded" in page


def test_demo_report_and_cli(tmp_path):
    from leadscore.cli import app
    from leadscore.demo import write_demo_export

    write_demo_export(tmp_path / "d", n_leads=1500, seed=3)
    export, params = read_export(tmp_path / "d"), default_params()
    started = time.perf_counter()
    summary = write_sla_report(export, params, tmp_path / "sla")
    assert time.perf_counter() - started < 60  # seconds, not minutes (performance proper lives in bench/)
    f = summary["funnel"]
    # Guaranteed by the definitions: SQL needs points ≥ sql ≥ mql, so every SQL lead is an MQL;
    # SAL needs an SQL moment; won needs an opportunity; nothing exceeds the leads.
    assert f["lead"] == 1500 and f["lead"] >= f["mql"] >= f["sql"] >= f["sal"] and f["opportunity"] >= f["won"]
    assert f["sql"] > 0 and f["won"] > 0
    funnel = pd.read_csv(tmp_path / "sla" / "sla_funnel.csv", keep_default_na=False, na_values=[""])
    # Every SQL lead is an MQL (the rules require mql ≤ sql), so "SQL among MQL" is SQL / MQL.
    assert funnel.loc[funnel["by"] == "all", "conv_sql"].iloc[0] == pytest.approx(f["sql"] / f["mql"])
    for by in ("grade", "week"):
        part = funnel.loc[funnel["by"] == by]
        assert part[["lead", "mql", "sql", "sal", "opportunity", "won"]].sum().tolist() == list(f.values())
    fu = summary["followup"]
    assert fu["within_1day"] + fu["later"] + fu["never"] == pytest.approx(1.0) and fu["within_30min"] <= fu["within_1day"]
    for name in ("sla_funnel.csv", "sla_weekly.csv", "sla_followup.csv", "sla_value.csv", "sla_funnel.png",
                 "sla_weekly.png", "sla.html"):
        assert (tmp_path / "sla" / name).stat().st_size > 0
    _renders(tmp_path / "sla" / "sla.html", "report_sla.png",
             ["derived from the export", 'id="funnel-grade"', 'id="weekly"', 'id="followup"', 'id="value"',
              "not recorded"])

    result = CliRunner().invoke(app, ["sla", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "sla.html" in result.output and (tmp_path / "cli" / "sla.html").exists()
