import pandas as pd
import pytest

from features.build import compute_features
from features.contract import read_export
from leadscore.params import load_params
from models.base import score_leads
from models.rules import RuleScorer, RulesError, load_rules
from tests.helpers import tiny_export

FEATURES = load_params().features


@pytest.fixture()
def scorer():
    return RuleScorer(load_rules(), FEATURES)


@pytest.fixture()
def export(tmp_path):
    return read_export(tiny_export(tmp_path / "x"))


def test_default_sla_scores_with_reasons(scorer, export):
    snaps = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "as_of": pd.Timestamp("2025-01-20")})
    results = score_leads(scorer, snaps, export.leads, export.activities, top_k=3)
    by_id = {r.lead_id: r for r in results}
    # L1: C-level, 500 employees, DACH, software, budget yes, demo request → far ahead of the student
    assert by_id["L1"].probability > by_id["L2"].probability
    assert all(r.scorer == "rules" and r.model_version == "rules:1" for r in results)
    assert all(1 <= r.score <= 99 for r in results)
    assert by_id["L1"].reasons and all(r.text and r.effect != 0 for r in by_id["L1"].reasons)
    assert any(r.feature == "demo_request_90d" and r.effect == 30 for r in by_id["L1"].reasons)


def test_competitor_is_grade_d_with_the_reason(scorer, export):
    snaps = pd.DataFrame({"lead_id": ["L3"], "as_of": pd.Timestamp("2025-03-01")})
    [result] = score_leads(scorer, snaps, export.leads, export.activities, top_k=5)
    assert result.grade == "D"
    assert result.reasons[0].feature == "is_competitor" and "Competitor" in result.reasons[0].text


def test_student_never_gets_grade_a_however_active(scorer, export):
    snaps = pd.DataFrame({"lead_id": ["L2"], "as_of": pd.Timestamp("2025-03-01")})
    burst = pd.DataFrame({"lead_id": "L2", "occurred_at": pd.date_range("2025-02-10", periods=40, freq="12h"),
                          "activity_type": ["demo_request", "trial_signup", "contact_form", "pricing_page_view"] * 10})
    [result] = score_leads(scorer, snaps, export.leads.assign(employees=5000.0, country="DE"),
                           pd.concat([export.activities, burst]), top_k=3)
    assert result.grade != "A"


def test_more_hand_raisers_never_lower_the_points(scorer, export):
    snaps = pd.DataFrame({"lead_id": ["L3"], "as_of": pd.Timestamp("2025-03-01")})
    last = None
    for n in range(4):
        extra = pd.DataFrame({"lead_id": "L3", "occurred_at": [pd.Timestamp("2025-02-20")] * n, "activity_type": "demo_request"})
        raw = compute_features(snaps, export.leads, pd.concat([export.activities, extra]), scorer.spec)
        points = scorer.points(raw)[0][0]
        assert last is None or points >= last
        last = points


def test_invalid_sla_file_names_line_and_reason(tmp_path):
    text = (tmp_path / "ok.yaml")
    good = load_rules()
    bad = """name: broken
grades: {A: 75, B: 50, C: 25}
thresholds: {mql: 50, sql: 75}
rules:
  - {feature: employees, min: 200, points: 10, label: ok}
  - {feature: employees, min: 500, max: 100, points: 5, label: "min above max"}
"""
    text.write_text(bad)
    with pytest.raises(RulesError) as err:
        load_rules(text)
    assert "line 6" in str(err.value) and "'min' (500.0) must be below 'max' (100.0)" in str(err.value)
    text.write_text(bad.replace("min: 500, max: 100, points: 5", "per_unit: 2, points: 5"))
    with pytest.raises(RulesError, match="line 6.*exactly one of 'points'"):
        load_rules(text)
    text.write_text("name: [unclosed\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(text)
    assert good.rules


def test_grades_must_be_ordered(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: x\ngrades: {A: 10, B: 50, C: 25}\nthresholds: {mql: 1, sql: 2}\nrules:\n  - {feature: employees, min: 1, points: 1, label: x}\n")
    with pytest.raises(RulesError, match="line 2.*A > B > C"):
        load_rules(path)
