"""The SLA rules' live path (the API's fallback): one lead from its online feature dict, without pandas.

Performance lives in ``bench/serve_speed.py``; these tests check the mechanism (no pandas object is
built per request) and that the live answer is the pandas path's, bit for bit.
"""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.config.params import load_params
from leadscore.features.online import OnlineFeatures
from leadscore.models.rules import RuleScorer, load_rules
from leadscore.serving.live import score_rules

FEATURES = load_params().features
AS_OF_US = 1_750_000_000_000_000  # 2025-06-15T15:06:40
DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def scorer() -> RuleScorer:
    return RuleScorer(load_rules(), FEATURES)


def _lead(lead_id: str = "X1", **profile) -> dict[str, object]:
    base = {"lead_id": lead_id, "created_at": pd.Timestamp("2025-01-01"), "email": "anna@acme.de",
            "company": "Acme", "industry": "software", "employees": 500.0, "annual_revenue": float("nan"),
            "country": "DE", "job_title": "Geschäftsführerin", "lead_source": "webinar", "budget_confirmed": "yes"}
    return base | profile


@pytest.fixture()
def no_pandas_objects(monkeypatch):
    """Building a DataFrame or a Series raises: what the live path must never need."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"the live rules path built a pandas {type(self).__name__}")

    def apply():
        monkeypatch.setattr(pd.DataFrame, "__init__", refuse)
        monkeypatch.setattr(pd.Series, "__init__", refuse)

    return apply


def test_live_rules_build_no_pandas_objects(scorer, no_pandas_objects):
    online = OnlineFeatures(scorer.spec)
    activities = [(AS_OF_US - 3 * DAY_US, "demo_request", "web"), (AS_OF_US - 40 * DAY_US, "pricing_page_view", "web")]
    leads = [(_lead(), activities), (_lead("X2", job_title="Werkstudent", email="x@gmail.com"), [])]
    no_pandas_objects()
    results, raws = score_rules(scorer, online, leads, AS_OF_US, 3, "en")
    assert [r.lead_id for r in results] == ["X1", "X2"] and len(raws) == 2
    assert results[1].grade == "D"  # the student exclusion still fires


# --- parity: the live path (score_rows over dicts) against the pandas path over the same dicts

# Every kind of rule the format allows, on standard, decayed and profile features, so that each
# branch of CompiledRule is held to its column form (the default SLA has no half-life, no numeric
# 'equals' on a profile column, no per-unit on a text column).
EVERY_KIND = """\
name: every kind
grades: {A: 60, B: 35, C: 10}
thresholds: {mql: 20, sql: 35}
matrix: {fit: {A: 30, B: 15, C: 5}, interest: [25, 12, 4]}
rules:
  - {feature: employees, min: 1000, points: 20, label: big}
  - {feature: employees, max: 10, points: -10, label: tiny}
  - {feature: annual_revenue, min: 1000000, max: 50000000, points: 7.5, label: revenue}
  - {feature: seniority, in: [c_level, vp_director], points: 12, label: senior}
  - {feature: seniority, in: [student, intern], points: -40, exclude: true, label: student}
  - {feature: region, equals: DACH, points: 6, label: dach}
  - {feature: is_free_mail, equals: 1, points: -15, label: free mail}
  - {feature: is_competitor, equals: 1, points: -100, exclude: true, label: competitor}
  - {feature: employees, in: ["500"], points: 3, label: a text level on a number}
  - {feature: industry, per_unit: 2, cap: 4, label: a count read from text}
  - {feature: sdr_rating, equals: 3, points: 9, group: interest, label: rating three}
  - {feature: sdr_rating, min: 4, points: 4, label: rating high}
  - {feature: budget_confirmed, equals: "yes", points: 10, label: budget}
  - {feature: pricing_page_view_30d, per_unit: 5, cap: 12, half_life_days: 7, label: pricing decayed}
  - {feature: demo_request_90d, per_unit: 30, cap: 30, half_life_days: 30, label: demo decayed}
  - {feature: email_click_7d, per_unit: -0.7, cap: 3.3, label: negative count}
  - {feature: page_view_90d, per_unit: 0.37, label: uncapped fraction}
  - {feature: webinar_attendance_90d, per_unit: 1.1, cap: 0, label: capped at zero}
  - {feature: has_unsubscribed, equals: 1, points: -30, label: unsubscribed}
  - {feature: days_since_last_activity, min: 60, max: 3650, points: -10, label: cold}
  - {feature: engagement, min: 0.5, points: 5, group: interest, label: engaged}
  - {feature: activity_trend, max: 0, points: -2.25, label: cooling}
"""

TITLES = ["Geschäftsführerin", "CEO", "VP Sales", "Head of Marketing", "Werkstudent", "Praktikantin", "Intern",
          "Freelancer", "Freiberufler", "Student", "Software Engineer", "", "   ", None, "Director of IT", "zzz"]
EMAILS = ["anna@acme.de", "bob@gmail.com", "x@scorely.io", "y@sub.leadrival.com", "no-at-sign", "", None,
          "Z@GMX.DE", "c@web.de", "d@acme.co.uk"]
COUNTRIES = ["DE", "AT", "CH", "FR", "US", "Narnia", "", None, "de", "GB"]
INDUSTRIES = ["software", "manufacturing", "retail", "education", "basket weaving", "", None, "Software", "42"]
NUMBERS = [None, float("nan"), 0.0, 5.0, 9.999, 10.0, 49.0, 50.0, 199.0, 200.0, 999.0, 1000.0, 1e9,
           -1.0, "1000", " 250 ", "1e3", "1,000", "abc", "", "-0", True, 3, "3", "4.0", "nan"]
# Infinite sizes: the rules' points must agree; a reason about them cannot be phrased on either path
# (features.catalog.describe raises OverflowError on inf), so they are checked on the points only.
INFINITE = [float("inf"), float("-inf"), "inf", "-Infinity"]
TYPES = ["demo_request", "trial_signup", "contact_form", "pricing_page_view", "webinar_attendance",
         "whitepaper_download", "email_click", "page_view", "unsubscribe", "email_bounce", "email_open",
         "sales_call", "meeting", "mystery_type"]
# Ages at the edges of the windows (7, 30, 90 days), of the longest window, of a day, and of as_of.
EDGE_AGES_US = [0, 1, DAY_US - 1, DAY_US, 7 * DAY_US, 7 * DAY_US + 1, 30 * DAY_US, 30 * DAY_US + 1,
                60 * DAY_US, 90 * DAY_US, 90 * DAY_US + 1, 91 * DAY_US, 400 * DAY_US, -1, -DAY_US]


def random_leads(n: int, seed: int, numbers: list = NUMBERS) -> list[tuple[dict, list]]:
    """Leads with missing fields, unknown categories, NaN, text numbers, no activities, negative
    personas, and activities at the decay and window edges (and after as_of, which must not count)."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        profile = _lead(f"R{i}", email=rng.choice(EMAILS), industry=rng.choice(INDUSTRIES),
                        employees=rng.choice(numbers), annual_revenue=rng.choice(numbers + [5e6, 2e7]),
                        country=rng.choice(COUNTRIES), job_title=rng.choice(TITLES),
                        lead_source=rng.choice(["webinar", None, "linkedin", "?"]),
                        budget_confirmed=rng.choice(["yes", "no", "", None, "YES", "yes "]),
                        purchase_timeframe=rng.choice(["<3 months", "3-6 months", None, ""]),
                        sdr_rating=rng.choice(numbers), created_at=pd.Timestamp("2024-01-01")
                        + pd.Timedelta(days=rng.randint(0, 600)))
        for key in rng.sample(["email", "industry", "employees", "country", "job_title", "budget_confirmed"], 2):
            if rng.random() < 0.3:
                del profile[key]  # a field the request did not send at all
        activities = []
        if rng.random() > 0.25:  # a quarter of the leads never did anything
            for _ in range(rng.choice([1, 2, 5, 20, 60])):
                age = rng.choice(EDGE_AGES_US) if rng.random() < 0.4 else rng.randint(0, 200 * DAY_US)
                activities.append((AS_OF_US - age, rng.choice(TYPES), rng.choice(["web", "email", None, "phone"])))
        out.append((profile, activities))
    return out


def _pandas_path(scorer: RuleScorer, raws: list[dict], ids: list[str], top_k: int, lang: str):
    """What serving.live.score_rules did before issue 17: a DataFrame of the dicts, then score_frame."""
    return scorer.score_frame(pd.DataFrame(raws, columns=scorer.spec.names), ids, top_k=top_k, lang=lang)


def assert_same(live, batch) -> None:
    """Bit for bit: the reprs hold every field (probability, score, grade, sales-ready, recommendation,
    reasons with their values and effects, matrix), floats to the last bit and their types."""
    assert len(live) == len(batch)
    for a, b in zip(live, batch):
        assert repr(a) == repr(b)


def assert_same_points(scorer: RuleScorer, raws: list[dict]) -> None:
    """Per-rule points and exclusions, live and over a frame, equal to the last bit (and sign of zero)."""
    live, batch = scorer._evaluate_rows(raws), scorer._evaluate(pd.DataFrame(raws, columns=scorer.spec.names))
    for a, b in zip(live, batch):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _check_parity(scorer: RuleScorer, leads: list[tuple[dict, list]], as_of_us: int) -> None:
    online = OnlineFeatures(scorer.spec)
    raws = [online.features(p, acts, as_of_us)[0] for p, acts in leads]
    ids = [str(p["lead_id"]) for p, _ in leads]
    assert_same_points(scorer, raws)
    for top_k, lang in ((3, "en"), (10, "de")):
        assert_same(scorer.score_rows(raws, ids, top_k, lang), _pandas_path(scorer, raws, ids, top_k, lang))
    # One lead per request, as the API mostly sees it (a one-row frame infers its column types alone).
    for raw, lead_id in list(zip(raws, ids))[:150]:
        assert_same(scorer.score_rows([raw], [lead_id], 3, "en"), _pandas_path(scorer, [raw], [lead_id], 3, "en"))
    # And through the serving function itself.
    live, live_raws = score_rules(scorer, online, leads, as_of_us, 3, "en")
    assert_same(live, _pandas_path(scorer, raws, ids, 3, "en")) and live_raws == raws


@pytest.fixture(scope="module")
def demo_leads(demo_dir):
    from leadscore.features.contract import read_export
    from leadscore.features.online import activity_lists, as_of_micros, profile_dicts

    export = read_export(demo_dir)
    profiles, histories = profile_dicts(export.leads), activity_lists(export.activities)
    leads = [(profiles[i], histories.get(i, [])) for i in profiles]
    return leads, export.data_end


@pytest.mark.parametrize("days_before_end", [0, 45, 200])
def test_live_rules_equal_the_pandas_path_on_the_demo_export(scorer, demo_leads, days_before_end):
    from leadscore.features.online import as_of_micros

    leads, end = demo_leads
    _check_parity(scorer, leads, as_of_micros(end - pd.Timedelta(days=days_before_end)))


def test_live_rules_equal_the_pandas_path_on_random_and_edge_leads(scorer):
    _check_parity(scorer, random_leads(600, seed=17), AS_OF_US)


def test_infinite_numbers_give_the_same_points(scorer, tmp_path):
    path = tmp_path / "every_kind.yaml"
    path.write_text(EVERY_KIND)
    for rules in (scorer, RuleScorer(load_rules(path), FEATURES)):
        online = OnlineFeatures(rules.spec)
        leads = random_leads(300, seed=3, numbers=NUMBERS + INFINITE * 3)
        raws = [online.features(p, a, AS_OF_US)[0] for p, a in leads]
        assert any(r["employees"] in (float("inf"), float("-inf")) for r in raws)
        assert_same_points(rules, raws)


def test_every_kind_of_rule_is_equal_live_and_in_pandas(tmp_path):
    path = tmp_path / "every_kind.yaml"
    path.write_text(EVERY_KIND)
    every = RuleScorer(load_rules(path), FEATURES)
    assert {c.test for c in every.table} == {"count", "in", "equals_text", "equals_number", "range"}
    leads = random_leads(600, seed=5)
    _check_parity(every, leads, AS_OF_US)
    # The branches fire on these leads, or the parity above proves little.
    online = OnlineFeatures(every.spec)
    raws = [online.features(p, a, AS_OF_US)[0] for p, a in leads]
    fired = [sum(c.one_fires(r[c.feature]) for r in raws) for c in every.table]
    never = [c.feature for c, n in zip(every.table, fired) if n == 0]
    assert never == ["employees"]  # 'in: ["500"]' on a number: text never equals a number, in pandas either
    per_rule, exclusions = every._evaluate_rows(raws)
    assert exclusions.any(axis=0)[[4, 7]].all()
    assert (per_rule[:, 17] == 0).all() and fired[17] > 0  # cap 0: fires, gives nothing


def test_the_rule_table_follows_a_replaced_config(scorer):
    """Callers that swap ``config`` (the SLA report's what-if rules) get a table of the new rules."""
    other = RuleScorer(load_rules(), FEATURES)
    first = other.table
    other.config = other.config.model_copy(update={"rules": other.config.rules[:3]})
    assert len(other.table) == 3 and other.table is not first and scorer.table[0] == first[0]


def test_live_path_scores_no_leads_as_no_answers(scorer):
    assert scorer.score_rows([], []) == []
