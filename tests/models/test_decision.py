"""One decision per lead: grade, sales-ready and recommendation can never disagree, and a float
round trip (±1 ulp) never moves a lead across a cut-off."""

import itertools

import numpy as np
import pytest

from leadscore.models.decision import (
    RECOMMENDATION_CODES,
    RECOMMENDATIONS,
    TIE_TOLERANCE,
    Cutoffs,
    Matrix,
    at_or_above,
    decide,
    decisions,
    grades_of,
    level_from_cutoffs,
)
from leadscore.training.thresholds import choose_thresholds, count_at_or_above, cutoff_for_volume

QUADRANTS = [None] + [Matrix(f, i, 0.0, 0.0) for f, i in itertools.product("ABCD", (1, 2, 3, 4))]


@pytest.mark.parametrize("quadrant", QUADRANTS, ids=lambda q: q.cell if q else "none")
@pytest.mark.parametrize("grade", ["A", "B", "C", "D"])
@pytest.mark.parametrize("lang", ["en", "de"])
def test_hand_to_sales_if_and_only_if_sales_ready(grade, quadrant, lang):
    d = decide(grade, quadrant, lang)
    assert d.sales_ready == (grade in ("A", "B"))
    assert (d.recommendation == "hand_to_sales") == d.sales_ready
    assert d.recommendation in RECOMMENDATION_CODES and d.recommendation_text
    if not d.sales_ready and quadrant is not None:
        # below the threshold the quadrant picks the next step
        expected = ("keep_nurturing" if quadrant.high_fit else
                    "nurture_as_recommender" if quadrant.high_interest else "no_further_attention")
        assert d.recommendation == expected


def test_every_recommendation_text_names_its_step_in_both_languages():
    for (ready, _, _), (code, en, de) in RECOMMENDATIONS.items():
        assert (code == "hand_to_sales") == ready
        assert en != de and ("an den Vertrieb übergeben" in de) == ready and ("hand to sales" in en) == ready


@pytest.mark.parametrize("cut", [0.0731, 1 / 3, 0.5, 1e-4, 75.0, 40.5])
def test_one_ulp_either_side_of_a_cut_off_keeps_the_grade(cut):
    cutoffs = Cutoffs(cut * 2 if cut > 0 else 1.0, cut, cut / 2)
    values = [cut, np.nextafter(cut, -np.inf), np.nextafter(cut, np.inf), cut - 3e-17, cut + 3e-17]
    assert grades_of(values, cutoffs) == ["B"] * 5
    # clearly below is C: the tie is narrow
    assert grades_of([cut - 1e-6 * max(1, cut)], cutoffs) == ["C"]
    assert level_from_cutoffs(np.nextafter(cut, 0), [cut * 2, cut, cut / 2]) == 2


def test_the_tie_rule_is_relative_for_points_and_absolute_for_probabilities():
    assert at_or_above(75.0 - 74 * TIE_TOLERANCE, 75.0) and not at_or_above(75.0 - 76 * TIE_TOLERANCE, 75.0)
    assert at_or_above(0.2 - 0.9 * TIE_TOLERANCE, 0.2) and not at_or_above(0.2 - 1.1 * TIE_TOLERANCE, 0.2)


def test_excluded_leads_are_grade_d_and_never_handed_to_sales():
    cut = Cutoffs(0.3, 0.2, 0.1)
    [d] = decisions([0.9], cut, [Matrix("D", 1, 0, 0)], excluded=[True])
    assert d.grade == "D" and not d.sales_ready and d.recommendation == "nurture_as_recommender"


def test_cut_offs_must_be_ordered_and_finite():
    with pytest.raises(ValueError, match="a > b > c"):
        Cutoffs(0.1, 0.2, 0.05)
    with pytest.raises(ValueError, match="finite"):
        Cutoffs(float("nan"), 0.2, 0.05)


def test_volume_cut_off_never_splits_a_tie_and_keeps_grade_b_filled():
    rng = np.random.default_rng(7)
    week = np.repeat(np.arange(10), 300)
    p = np.round(rng.beta(1, 15, len(week)), 3)  # many exact ties, as an isotonic calibrator gives
    for per_week in (5, 17, 50, 120):
        cut = cutoff_for_volume(p, 10, per_week)
        n = count_at_or_above(p, [cut])[0]
        assert n <= per_week * 10
        # the next lead down is clearly below: letting it in would break the capacity
        below = p[~at_or_above(p, cut)]
        if len(below):
            assert count_at_or_above(p, [below.max()])[0] > per_week * 10
    # A round trip that moves every probability by ±1 ulp changes no grade and leaves B filled.
    from leadscore.config.params import load_params

    t = choose_thresholds(p, week, load_params().thresholds)
    cutoffs = Cutoffs(t["a"], t["b"], t["c"])
    assert t["a"] > t["b"] + TIE_TOLERANCE and t["b"] > t["c"] + TIE_TOLERANCE
    before = grades_of(p, cutoffs)
    for direction in (-np.inf, np.inf):
        assert grades_of(np.nextafter(p, direction), cutoffs) == before
        assert grades_of(p + (3e-17 if direction > 0 else -3e-17), cutoffs) == before
    assert before.count("B") > 0


def test_a_probability_exactly_at_the_stored_threshold_is_sales_ready(trained):
    model = trained["model"]
    sql = model.sales_ready
    for p in (sql, np.nextafter(sql, 0), sql - 3e-17, np.nextafter(sql, 1)):
        [g] = grades_of([p], model.cutoffs)
        assert g == "B" or (g == "A" and p > sql)
