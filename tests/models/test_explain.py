"""Explanations: exact, deterministic, grouped into business signals, placed in the fit × interest matrix,
and "what would change it" computed with the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import compute_features, encode_matrix
from leadscore.features.contract import read_export
from leadscore.features.online import activity_lists, as_of_micros, profile_dicts
from leadscore.features.snapshots import scoring_snapshots
from leadscore.models.base import score_leads
from leadscore.models.decision import RECOMMENDATIONS
from leadscore.models.explain import Signals, signal_of
from leadscore.models.whatif import LEAD_TIME_US, candidate_actions


@pytest.fixture(scope="module")
def open_leads(trained, demo_dir):
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=20)
    snaps = scoring_snapshots(export, as_of)
    raw = compute_features(snaps, export.leads, export.activities, trained["model"].spec)
    return export, as_of, snaps, raw


def test_base_value_plus_contributions_is_the_margin_for_every_lead(trained, open_leads):
    model = trained["model"]
    _, _, _, raw = open_leads
    X = encode_matrix(raw, model.spec)
    contrib = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), model.margin(X), rtol=0, atol=1e-6)
    # signals regroup the same contributions: nothing is lost or counted twice
    signals = Signals.of(model.spec)
    np.testing.assert_allclose(signals.sum(contrib[:, :-1]).sum(axis=1) + contrib[:, -1], model.margin(X), rtol=0, atol=1e-9)


def test_window_variants_are_one_signal(trained):
    spec = trained["model"].spec
    assert signal_of("pricing_page_view_7d", spec) == signal_of("pricing_page_view_90d", spec) == "pricing_page_view"
    assert signal_of("employees_band", spec) == "employees" and signal_of("region", spec) == "country"
    assert signal_of("activities_30d", spec) == "activities" and signal_of("seniority", spec) == "seniority"
    signals = Signals.of(spec)
    assert len(signals.names) < len(spec.names)
    assert all(g in ("fit", "interest") for g in signals.groups)


def test_reasons_are_deterministic_signed_and_summed_over_windows(trained, open_leads):
    model = trained["model"]
    export, _, snaps, raw = open_leads
    ids = snaps["lead_id"].tolist()
    first = model.score_frame(raw, ids, top_k=3)
    again = model.score_frame(raw, ids, top_k=3)
    assert first == again
    contrib = model.contributions(encode_matrix(raw, model.spec))[:, :-1]
    names = model.spec.names
    checked = 0
    for i, r in enumerate(first[:300]):
        effects = [x.effect for x in r.reasons]
        ups = [e for e in effects if e > 0]
        downs = effects[len(ups):]
        assert ups == sorted(ups, reverse=True) and downs == sorted(downs) and all(e < 0 for e in downs)
        assert len(ups) <= 3 and len(downs) <= 3
        for reason in r.reasons:
            members = [j for j, n in enumerate(names) if signal_of(n, model.spec) == reason.feature]
            assert reason.effect == pytest.approx(contrib[i, members].sum(), abs=1e-12)
            checked += len(members) > 1
    assert checked > 100  # many reasons really are sums of several windows


def test_fit_and_interest_place_the_lead_in_the_matrix(trained, open_leads):
    model = trained["model"]
    _, _, snaps, raw = open_leads
    results = model.score_frame(raw, snaps["lead_id"].tolist())
    cells = {r.matrix.cell for r in results}
    assert len(cells) >= 8  # the grid is used, not one corner
    for r in results:
        m = r.matrix
        high_fit, high_interest = m.fit_grade in "AB", m.interest_level <= 2
        assert r.recommendation == RECOMMENDATIONS[(r.sales_ready, high_fit, high_interest)][0]
        assert (r.recommendation == "hand_to_sales") == r.sales_ready == (r.grade in ("A", "B"))
        assert r.reasons == [] or {x.group for x in r.reasons} <= {"fit", "interest"}
    # a better fit effect never gives a worse grade (among leads outside the negative persona)
    persona = (raw["seniority"].isin(["student", "intern"]) | (raw["is_competitor"] == 1)).to_numpy()
    pairs = sorted((r.matrix.fit_effect, "ABCD".index(r.matrix.fit_grade)) for r, p in zip(results, persona) if not p)
    grades = [g for _, g in pairs]
    assert grades == sorted(grades, reverse=True)


def test_a_student_or_competitor_never_gets_fit_grade_a(trained, open_leads):
    model = trained["model"]
    _, _, snaps, raw = open_leads
    results = model.score_frame(raw, snaps["lead_id"].tolist())
    persona = (raw["seniority"].isin(["student", "intern"]) | (raw["is_competitor"] == 1)).to_numpy()
    assert persona.sum() > 20
    assert all(r.matrix.fit_grade == "D" for r, p in zip(results, persona) if p)
    # even when the model itself liked their fit: the cap is a rule, not luck
    fake = raw.copy()
    fake["seniority"] = "student"
    capped = model.score_frame(fake, snaps["lead_id"].tolist())
    assert {r.matrix.fit_grade for r in capped} == {"D"}
    # below the threshold the quadrant says what to do; a sales-ready student is still handed over:
    # the machine recommends, people decide
    assert all(r.recommendation in ("nurture_as_recommender", "no_further_attention") for r in capped if not r.sales_ready)
    assert all(r.recommendation == "hand_to_sales" for r in capped if r.sales_ready)


def test_reasons_are_true_and_visible(trained, open_leads):
    model = trained["model"]
    _, _, snaps, raw = open_leads
    ids = snaps["lead_id"].tolist()
    # A country the model never saw is scored as missing: it is never given as a reason.
    odd = raw.assign(country="Atlantis")
    for r in model.score_frame(odd, ids, top_k=20):
        assert all(x.value != "Atlantis" for x in r.reasons)
        assert all(round(abs(x.effect), 2) > 0 for x in r.reasons)  # never "+0.00"
    # No e-mail address: said as missing, never as "uses a company domain".
    blank = raw.assign(is_free_mail=float("nan"), is_competitor=float("nan"))
    texts = [x.text for r in model.score_frame(blank, ids, top_k=20, lang="en") for x in r.reasons]
    assert not any("company e-mail domain" in t or "Not a competitor" in t for t in texts)


def test_german_and_english_differ_only_in_words(trained, open_leads):
    model = trained["model"]
    _, _, snaps, raw = open_leads
    ids = snaps["lead_id"].tolist()[:200]
    en, de = model.score_frame(raw.iloc[:200], ids), model.score_frame(raw.iloc[:200], ids, lang="de")
    for a, b in zip(en, de):
        assert a.probability == b.probability and [x.effect for x in a.reasons] == [x.effect for x in b.reasons]
        assert [x.feature for x in a.reasons] == [x.feature for x in b.reasons]
    texts_de = " ".join(x.text for r in de for x in r.reasons)
    assert "Tagen" in texts_de and " days" not in texts_de


def test_one_lead_alone_equals_the_batch_answer(trained, open_leads):
    """The live path (no pandas, one thread) gives the very same LeadScore as batch scoring."""
    model = trained["model"]
    export, as_of, snaps, raw = open_leads
    batch = model.score_frame(raw, snaps["lead_id"].tolist(), lang="de")
    profiles, histories = profile_dicts(export.leads), activity_lists(export.activities)
    t = as_of_micros(as_of)
    for r in batch[:400]:
        assert model.score_one(profiles[r.lead_id], histories.get(r.lead_id, []), t, lang="de") == r


def test_what_would_change_it_is_computed_with_the_model_and_minimal(trained, open_leads):
    model = trained["model"]
    export, as_of, snaps, raw = open_leads
    # the leads closest below the threshold, and every lead above it
    p = model.predict_proba(raw)
    near = np.argsort(-np.where(p < model.sales_ready, p, -1))[:150]
    snaps = snaps.iloc[np.r_[near, np.flatnonzero(p >= model.sales_ready)]]
    scored = score_leads(model, snaps, export.leads, export.activities, what_if=True)
    with_suggestion = [r for r in scored if r.what_if is not None and r.what_if.actions]  # levers: test_whatif.py
    assert len(with_suggestion) >= 5
    assert all(r.what_if is None for r in scored if r.sales_ready)
    types = [t for t in model.explain.actionable_types if t in model.spec.activity_types]
    for r in with_suggestion[:5]:
        w = r.what_if
        assert set(w.actions) <= set(types) and w.probability >= model.sales_ready > r.probability
        # add the suggested actions to the lead's real history and score it the batch way
        when = as_of - pd.Timedelta(microseconds=LEAD_TIME_US)
        extra = pd.DataFrame([{"lead_id": r.lead_id, "occurred_at": when, "activity_type": t, "channel": None}
                              for t, n in w.actions.items() for _ in range(n)])
        acts = pd.concat([export.activities, extra], ignore_index=True)
        one = snaps[snaps["lead_id"] == r.lead_id]
        again = score_leads(model, one, export.leads, acts)[0]
        assert again.probability == pytest.approx(w.probability, abs=1e-12) and again.sales_ready
        # no smaller set of actions would have done it
        fewer = [c for c in candidate_actions(types, sum(w.actions.values()) - 1)]
        if fewer:
            rows = []
            for k, c in enumerate(fewer):
                rows += [{"lead_id": f"{r.lead_id}#{k}", "occurred_at": when, "activity_type": t, "channel": None}
                         for t, n in c.items() for _ in range(n)]
            history = export.activities[export.activities["lead_id"] == r.lead_id]
            copies = pd.concat([history.assign(lead_id=f"{r.lead_id}#{k}") for k in range(len(fewer))] + [pd.DataFrame(rows)],
                               ignore_index=True)
            lead = export.leads[export.leads["lead_id"] == r.lead_id]
            leads = pd.concat([lead.assign(lead_id=f"{r.lead_id}#{k}") for k in range(len(fewer))], ignore_index=True)
            probe = pd.DataFrame({"lead_id": [f"{r.lead_id}#{k}" for k in range(len(fewer))], "as_of": as_of})
            p = model.predict_proba(compute_features(probe, leads, copies, model.spec))
            assert (p < model.sales_ready).all()
