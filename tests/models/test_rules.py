from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadscore.config.params import load_params
from leadscore.features.build import compute_features
from leadscore.features.contract import read_export
from leadscore.models.base import score_leads
from leadscore.models.decision import RECOMMENDATIONS
from leadscore.models.rules import RulesConfig, RuleScorer, RulesError, load_rules
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
grades: {A: 100, B: 75, C: 50}
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


# ---- decay, groups, matrix, languages, reasons (hand-computed on the tiny export) -------------
# L1 at 2025-01-20: C-level (+20), 500 employees (+15), DACH (+10), software (+10), budget yes
# (+10) → fit 65; a demo request 9 days old (+30) and a pricing page view 16 whole days old (+5;
# with a 14-day half-life 5·0.5^(16/14)) → interest 35.
AS_OF = pd.Timestamp("2025-01-20")
PRICING_L1 = 5 * 0.5 ** (16 / 14)


@pytest.fixture()
def decayed():
    """The default SLA with a 14-day half-life on the pricing page rule (the default has none)."""
    data = yaml.safe_load(resources.files("leadscore.models").joinpath("default_sla.yaml").read_text())
    [pricing] = [r for r in data["rules"] if r["feature"] == "pricing_page_view_30d"]
    pricing["half_life_days"] = 14
    return RuleScorer(RulesConfig.model_validate(data), FEATURES)


def _score(scorer, export, ids, as_of=AS_OF, top_k=3, lang="en", leads=None, activities=None):
    snaps = pd.DataFrame({"lead_id": ids, "as_of": as_of})
    leads = export.leads if leads is None else leads
    activities = export.activities if activities is None else activities
    return {r.lead_id: r for r in score_leads(scorer, snaps, leads, activities, top_k=top_k, lang=lang)}


def _rules_file(tmp_path, rules: str, matrix: str = "matrix:\n  fit: {A: 50, B: 30, C: 15}\n  interest: [40, 20, 8]\n",
                thresholds: str = "thresholds: {mql: 50, sql: 75}\n") -> Path:
    path = tmp_path / "sla.yaml"
    path.write_text("name: test\ngrades: {A: 100, B: 75, C: 50}\n" + thresholds + matrix + "rules:\n" + rules)
    return path


def test_rules_ask_for_the_decayed_counts_they_read(scorer, decayed):
    assert scorer.spec.decayed_counts == []
    assert decayed.spec.decayed_counts == [["pricing_page_view", 30, 14.0]]
    assert {"pricing_page_view_30d", "pricing_page_view_30d_hl14"} <= set(decayed.spec.names)
    pricing = next(r for r in decayed.config.rules if r.feature == "pricing_page_view_30d")
    assert pricing.counted == "pricing_page_view_30d_hl14"


def test_decayed_points_for_a_known_age_and_the_reason_shows_the_plain_count(scorer, decayed, export):
    snaps = pd.DataFrame({"lead_id": ["L1"], "as_of": AS_OF})
    raw = compute_features(snaps, export.leads, export.activities, decayed.spec)
    total, per_rule, excluded = decayed.points(raw)
    j = next(j for j, r in enumerate(decayed.config.rules) if r.feature == "pricing_page_view_30d")
    assert per_rule[0, j] == pytest.approx(PRICING_L1, abs=1e-5)  # decay weights are rounded to 1e-6
    assert total[0] == pytest.approx(65 + 30 + PRICING_L1, abs=1e-5) and not excluded[0]
    assert scorer.points(compute_features(snaps, export.leads, export.activities, scorer.spec))[1][0, j] == 5
    [l1] = _score(decayed, export, ["L1"], top_k=10).values()
    [reason] = [r for r in l1.reasons if r.feature == "pricing_page_view_30d"]
    assert reason.value == 1.0 and reason.effect == pytest.approx(PRICING_L1, abs=1e-5)
    assert reason.text == ("Visited the pricing page (Visited the pricing page 1× in the last 30 days, "
                           "each counts half as much every 14 days): +2.3 points")


def test_cap_applies_after_the_decay(tmp_path, export):
    rule = "  - {feature: pricing_page_view_30d, per_unit: 5, cap: 8, half_life_days: 14, label: Pricing}\n"
    path = _rules_file(tmp_path, rule)
    scorer = RuleScorer(load_rules(path), FEATURES)
    as_of = pd.Timestamp("2025-03-01")

    def points(ages_days: list[float]) -> float:
        acts = pd.DataFrame({"lead_id": "L3", "activity_type": "pricing_page_view",
                             "occurred_at": [as_of - pd.Timedelta(days=d) for d in ages_days]})
        raw = compute_features(pd.DataFrame({"lead_id": ["L3"], "as_of": as_of}), export.leads, acts, scorer.spec)
        return scorer.points(raw)[0][0]

    # Two views 14 days old count 1 view: 5 points (capping first, min(10, 8)·0.5, would give 4).
    assert points([14.2, 14.7]) == pytest.approx(5.0)
    assert points([20.5]) == pytest.approx(5 * 0.5 ** (20 / 14), abs=1e-5)  # whole days of age
    assert points([0.5, 1.5, 2.5]) == 8  # 5 + 5·0.95 + 5·0.91 > 8: capped
    assert points([31.0]) == 0  # outside the rule's window


def test_english_and_german_reasons_with_groups(scorer, decayed, export):
    en = _score(scorer, export, ["L1"])["L1"]
    de = _score(scorer, export, ["L1"], lang="de")["L1"]
    assert [r.feature for r in en.reasons] == ["demo_request_90d", "seniority", "employees"]
    assert [r.group for r in en.reasons] == ["interest", "fit", "fit"]
    assert en.reasons[0].text == "Requested a demo (Requested a demo 1× in the last 90 days): +30 points"
    assert de.reasons[0].text == "Hat eine Demo angefragt (Hat in den letzten 90 Tagen 1× eine Demo angefragt): +30 Punkte"
    assert de.reasons[1].text == ("Entscheider (Geschäftsführung / C-Level) "
                                  "(Hierarchieebene: Geschäftsführung / C-Level): +20 Punkte")
    assert [r.effect for r in de.reasons] == [r.effect for r in en.reasons]
    assert de.recommendation == "hand_to_sales" and de.recommendation_text == RECOMMENDATIONS[(True, True, True)][2]
    de10 = _score(decayed, export, ["L1"], top_k=10, lang="de")["L1"]
    pricing = next(r for r in de10.reasons if r.feature == "pricing_page_view_30d")
    assert pricing.text.endswith("jede zählt alle 14 Tage nur noch halb so viel): +2,3 Punkte")


def test_every_default_rule_speaks_german():
    assert all(rule.label.de and rule.label.de != rule.label.en for rule in load_rules().rules)


def test_a_label_without_german_falls_back_to_english(tmp_path, export):
    path = _rules_file(tmp_path, "  - {feature: demo_request_90d, per_unit: 30, cap: 30, label: Asked for a demo}\n")
    [l1] = _score(RuleScorer(load_rules(path), FEATURES), export, ["L1"], lang="de").values()
    assert l1.reasons[0].text == "Asked for a demo (Hat in den letzten 90 Tagen 1× eine Demo angefragt): +30 Punkte"


def test_matrix_cell_recommendation_and_sales_ready_for_a_known_lead(scorer, export):
    l1 = _score(scorer, export, ["L1"])["L1"]
    assert l1.matrix.fit_effect == 65 and l1.matrix.interest_effect == 35
    assert l1.matrix.cell == "A2"  # fit 65 ≥ 50; interest 35 is in [20, 40)
    assert l1.recommendation == "hand_to_sales"
    assert l1.sales_ready and l1.grade == "A"  # 100 points ≥ A 100 (sql 75)
    # 95 days on, the demo request has left its window and the lead has gone cold (-10): the fit stays.
    later = _score(scorer, export, ["L1"], as_of=pd.Timestamp("2025-04-15"))["L1"]
    assert later.matrix.cell == "A4" and later.recommendation == "keep_nurturing"
    assert later.matrix.fit_effect == 65 and later.matrix.interest_effect == -10
    assert not later.sales_ready and later.grade == "C"  # 55 points: below sql 75, above C 50


def test_explicit_group_overrides_the_feature_group(tmp_path, export):
    rules = ("  - {feature: demo_request_90d, per_unit: 30, cap: 30, label: Demo, group: fit}\n"
             "  - {feature: employees, min: 100, points: 10, label: Size}\n")
    scorer = RuleScorer(load_rules(_rules_file(tmp_path, rules)), FEATURES)
    assert scorer.groups == ["fit", "fit"]
    l1 = _score(scorer, export, ["L1"])["L1"]
    assert l1.matrix.fit_effect == 40 and l1.matrix.interest_effect == 0
    assert {r.group for r in l1.reasons} == {"fit"}


def test_exclusion_forces_fit_grade_d_but_the_lead_keeps_score_and_recommendation(tmp_path, export):
    # The competitor exclusion costs no points here: without it L3 would be fit B (33) and sales-ready.
    rules = ("  - {feature: is_competitor, equals: 1, points: 0, exclude: true, label: Competitor}\n"
             "  - {feature: employees, min: 50, points: 8, label: Size}\n"
             "  - {feature: seniority, in: [head_manager], points: 10, label: Manager}\n"
             "  - {feature: region, in: [EU], points: 5, label: EU}\n"
             "  - {feature: industry, in: [software], points: 10, label: Industry}\n"
             "  - {feature: demo_request_90d, per_unit: 50, cap: 50, label: Demo}\n")
    scorer = RuleScorer(load_rules(_rules_file(tmp_path, rules)), FEATURES)
    demo = pd.DataFrame({"lead_id": ["L3"], "occurred_at": [pd.Timestamp("2025-02-20")], "activity_type": ["demo_request"]})
    as_of = pd.Timestamp("2025-03-01")
    l3 = _score(scorer, export, ["L3"], as_of=as_of, activities=pd.concat([export.activities, demo]))["L3"]
    assert l3.matrix.fit_effect == 33 and l3.matrix.interest_effect == 50
    assert l3.matrix.cell == "D1" and l3.recommendation == "nurture_as_recommender"
    assert l3.grade == "D" and not l3.sales_ready  # 83 points ≥ sql 75, but excluded
    assert 1 <= l3.score <= 99 and l3.probability > 0
    assert l3.reasons[0].feature == "is_competitor" and l3.reasons[0].effect == 0
    # The same lead with a company domain is no longer excluded.
    other = export.leads.assign(email=export.leads["email"].replace("e.f@scorely.io", "e.f@example.fr"))
    l3b = _score(scorer, export, ["L3"], as_of=as_of, leads=other, activities=pd.concat([export.activities, demo]))["L3"]
    assert l3b.matrix.cell == "B1" and l3b.sales_ready and l3b.grade == "B" and l3b.recommendation == "hand_to_sales"


def test_default_negative_persona_is_fit_grade_d(scorer, export):
    results = _score(scorer, export, ["L2", "L3"])
    assert results["L2"].matrix.fit_grade == "D" and results["L2"].reasons[0].feature == "seniority"  # student
    assert results["L3"].matrix.fit_grade == "D" and results["L3"].reasons[0].feature == "is_competitor"
    assert all(r.recommendation and 1 <= r.score <= 99 for r in results.values())


def test_top_k_positives_then_negatives(scorer, export):
    # L1 with a free-mail address (-15) who unsubscribed (-30).
    leads = export.leads.assign(email=export.leads["email"].replace("a.b@acme.de", "a.b@gmail.com"))
    unsub = pd.DataFrame({"lead_id": ["L1"], "occurred_at": [pd.Timestamp("2025-01-12")], "activity_type": ["unsubscribe"]})
    acts = pd.concat([export.activities, unsub])
    two = _score(scorer, export, ["L1"], top_k=2, leads=leads, activities=acts)["L1"]
    assert [(r.feature, r.effect) for r in two.reasons] == [
        ("demo_request_90d", 30), ("seniority", 20), ("has_unsubscribed", -30), ("is_free_mail", -15)]
    assert [r.group for r in two.reasons] == ["interest", "fit", "interest", "fit"]
    three = _score(scorer, export, ["L1"], top_k=3, leads=leads, activities=acts)["L1"]
    assert [r.effect for r in three.reasons] == [30, 20, 15, -30, -15]
    assert _score(scorer, export, ["L1"], top_k=0, leads=leads, activities=acts)["L1"].reasons == []


def test_default_matrix_cutoffs():
    config = load_rules()
    assert (config.matrix.fit.A, config.matrix.fit.B, config.matrix.fit.C) == (50, 30, 15)
    assert config.matrix.interest == [40, 20, 8]


# ---- validation of the new fields: each error names the file, the line and the reason ------------
GOOD_RULE = "  - {feature: employees, min: 200, points: 10, label: ok}\n"


@pytest.mark.parametrize(
    ("rules", "line", "message"),
    [
        ("  - feature: pricing_page_view_30d\n    per_unit: 5\n    half_life_days: 0\n    label: x\n",
         11, "greater than 0"),
        ("  - feature: pricing_page_view_30d\n    per_unit: 5\n    half_life_days: -7\n    label: x\n",
         11, "greater than 0"),
        ("  - feature: employees\n    per_unit: 0.01\n    half_life_days: 14\n    label: x\n",
         11, "'half_life_days' needs a count of one activity type in a window"),
        ("  - feature: activities_30d\n    per_unit: 1\n    half_life_days: 14\n    label: x\n",
         11, "'half_life_days' needs a count of one activity type in a window"),
        ("  - feature: pricing_page_view_30d\n    min: 1\n    points: 5\n    half_life_days: 14\n    label: x\n",
         12, "'half_life_days' goes with 'per_unit'"),
        ("  - feature: employees\n    min: 1\n    points: 5\n    group: behaviour\n    label: x\n",
         12, "Input should be 'fit' or 'interest'"),
        ("  - feature: employees\n    min: 1\n    points: 5\n    label: {de: Groß}\n",
         12, "'en' is missing"),
        ("  - feature: employees\n    min: 1\n    points: 5\n    label: {en: Big, fr: Grand}\n",
         12, "Extra inputs are not permitted"),
        ("  - feature: is_competitor\n    equals: 1\n    points: 10\n    exclude: true\n    label: x\n",
         9, "'exclude' marks a negative-persona condition"),
    ],
)
def test_invalid_rule_fields_name_line_and_reason(tmp_path, rules, line, message):
    path = _rules_file(tmp_path, GOOD_RULE + rules)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert str(path) in str(err.value) and f"line {line} " in str(err.value) and message in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("matrix", "thresholds", "line", "message"),
    [
        ("matrix:\n  fit: {A: 15, B: 30, C: 50}\n  interest: [40, 20, 8]\n", None, 5, "A > B > C"),
        ("matrix:\n  fit: {A: 50, B: 30, C: 15}\n  interest: [8, 20, 40]\n", None, 6, "must fall"),
        ("matrix:\n  fit: {A: 50, B: 30, C: 15}\n  interest: [40, 20]\n", None, 6, "at least 3 items"),
        ("", None, 1, "(matrix): Field required"),
        (None, "thresholds: {mql: 80, sql: 75}\n", 3, "'mql' (80.0) must not be above 'sql' (75.0)"),
        (None, "thresholds: {mql: 50, sql: 60}\n", 1, "grades.B (75) must equal thresholds.sql (60)"),
    ],
)
def test_invalid_matrix_and_thresholds_name_line_and_reason(tmp_path, matrix, thresholds, line, message):
    kwargs = {k: v for k, v in (("matrix", matrix), ("thresholds", thresholds)) if v is not None}
    path = _rules_file(tmp_path, GOOD_RULE, **kwargs)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert f"line {line} " in str(err.value) and message in str(err.value), str(err.value)
