import numpy as np
import pandas as pd
import pytest

from leadscore.config.params import load_params
from leadscore.features.build import build_features, compute_features, infer_spec, learn_categories
from leadscore.features.contract import read_export
from leadscore.features.titles import region, seniority
from tests.helpers import tiny_export

PARAMS = load_params()


@pytest.fixture()
def export(tmp_path):
    return read_export(tiny_export(tmp_path / "x"))


def _features(export, as_of, activities=None):
    spec = infer_spec(export.leads, export.activities, PARAMS.features)
    snaps = pd.DataFrame({"lead_id": export.leads["lead_id"], "as_of": pd.Timestamp(as_of)})
    return compute_features(snaps, export.leads, export.activities if activities is None else activities, spec)


@pytest.mark.parametrize(
    "title, level",
    [
        ("Geschäftsführer", "c_level"), ("CEO", "c_level"), ("Inhaberin", "c_level"),
        ("VP Engineering", "vp_director"), ("Bereichsleiter Vertrieb", "vp_director"),
        ("Head of Marketing", "head_manager"), ("Leiterin Einkauf", "head_manager"), ("IT-Leiter", "head_manager"),
        ("Werkstudent Marketing", "student"), ("Student", "student"), ("Praktikant", "intern"),
        ("Marketing Intern", "intern"), ("Freelancer", "freelancer"), ("Freiberuflicher Berater", "freelancer"),
        ("Sachbearbeiter", "individual_contributor"), ("", "unknown"), (None, "unknown"),
    ],
)
def test_seniority_from_german_and_english_titles(title, level):
    assert seniority(title) == level


def test_region():
    assert [region(c) for c in ("DE", "at", "FR", "US", None)] == ["DACH", "DACH", "EU", "other", "unknown"]


def test_activity_at_or_after_as_of_changes_nothing(export):
    as_of = pd.Timestamp("2025-01-20")
    before = _features(export, as_of)
    later = pd.DataFrame({
        "lead_id": ["L1", "L1", "L2"],
        "occurred_at": [as_of, as_of + pd.Timedelta(seconds=1), as_of + pd.Timedelta(days=3)],
        "activity_type": ["demo_request", "pricing_page_view", "email_click"],
    })
    after = _features(export, as_of, pd.concat([export.activities, later], ignore_index=True))
    pd.testing.assert_frame_equal(before, after)
    # and an activity just before as_of does change something (the test can fail)
    earlier = later.assign(occurred_at=as_of - pd.Timedelta(seconds=1))
    changed = _features(export, as_of, pd.concat([export.activities, earlier], ignore_index=True))
    assert changed.loc[0, "demo_request_7d"] == before.loc[0, "demo_request_7d"] + 1


def test_sales_activities_never_feed_a_feature(export):
    as_of = pd.Timestamp("2025-03-29")
    without = export.activities[~export.activities["activity_type"].isin(PARAMS.features.sales_activity_types)]
    # Even a sales call logged *before* as_of is not a feature: sales' judgement is not the lead's behaviour.
    extra = pd.DataFrame({"lead_id": ["L3"] * 3, "occurred_at": [pd.Timestamp("2025-03-01")] * 3,
                          "activity_type": ["sales_call", "meeting", "proposal_sent"]})
    with_sales = pd.concat([export.activities, extra], ignore_index=True)
    pd.testing.assert_frame_equal(_features(export, as_of, without), _features(export, as_of, with_sales))
    spec = infer_spec(export.leads, with_sales, PARAMS.features)
    assert not any(t in name for name in spec.names for t in ("sales_call", "meeting", "proposal"))


def test_personal_data_is_never_a_feature(export):
    spec = infer_spec(export.leads.assign(first_name="Anna", last_name="Schmidt", phone="+49 1"), export.activities, PARAMS.features)
    assert {"email", "first_name", "last_name", "phone", "company", "lead_id"}.isdisjoint(spec.names)
    raw = _features(export, "2025-03-01")
    assert raw["is_free_mail"].tolist() == [0.0, 1.0, 0.0]
    assert raw["is_competitor"].tolist() == [0.0, 0.0, 1.0]
    assert not raw.astype(str).apply(lambda col: col.str.contains("@")).any().any()


def test_extra_profile_columns_become_typed_features(export):
    leads = export.leads.assign(seats=["10", "3", None])
    spec = infer_spec(leads, export.activities, PARAMS.features)
    assert spec.profile_columns == {"budget_confirmed": "category", "seats": "numeric"}
    overridden = infer_spec(leads, export.activities, PARAMS.features.model_copy(update={"column_types": {"seats": "category"}}))
    assert overridden.profile_columns["seats"] == "category"


def test_one_lead_alone_equals_its_row_in_a_batch(export):
    as_of = pd.Timestamp("2025-03-01")
    spec = infer_spec(export.leads, export.activities, PARAMS.features)
    snaps = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "as_of": [as_of] * 3})
    spec = learn_categories(spec, compute_features(snaps, export.leads, export.activities, spec), 50)
    batch = build_features(snaps, export.leads, export.activities, spec)
    for i, lead in enumerate(["L1", "L2", "L3"]):
        one = build_features(
            snaps.iloc[[i]].reset_index(drop=True),
            export.leads[export.leads["lead_id"] == lead],
            export.activities[export.activities["lead_id"] == lead],
            spec,
        )
        pd.testing.assert_frame_equal(one.reset_index(drop=True), batch.iloc[[i]].reset_index(drop=True))


def test_unseen_category_becomes_missing_not_an_error(export):
    as_of = pd.Timestamp("2025-03-01")
    spec = infer_spec(export.leads, export.activities, PARAMS.features)
    snaps = pd.DataFrame({"lead_id": ["L1"], "as_of": [as_of]})
    spec = learn_categories(spec, compute_features(snaps, export.leads, export.activities, spec), 50)
    leads = export.leads.assign(industry="aerospace")
    X = build_features(snaps, leads, export.activities, spec)
    assert pd.isna(X.loc[0, "industry"]) and list(X["industry"].cat.categories) == ["software"]
    assert np.isfinite(X.select_dtypes("number").fillna(0).to_numpy()).all()


@pytest.mark.parametrize(
    "title, function",
    [("Leiter Marketing", "marketing"), ("Head of Sales", "sales"), ("Werkstudent Vertrieb", "sales"),
     ("IT-Leiter", "it"), ("Einkäufer", "purchasing"), ("CFO", "finance"), ("Geschäftsführer", "management"),
     ("Sachbearbeiter", "other"), ("", "unknown")],
)
def test_job_function_from_german_and_english_titles(title, function):
    from leadscore.features.titles import job_function

    assert job_function(title) == function


def test_size_bands_and_activity_trend(export):
    raw = _features(export, "2025-01-20")
    assert raw["employees_band"].tolist() == ["200-999", "1-9", "50-199"]
    # L1: 2 interactions in the last 30 days, none in the 60 before → trend +2
    assert raw.loc[0, "activity_trend"] == 2.0


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
def test_engagement_decays_by_half_life_and_weighs_types(export, engine):
    """L1 at 2025-01-31 10:00: a pricing page view 28 days old (weight 2) and a demo request
    21 days old (weight 5); the half-life is 14 days; each interaction's decay is rounded to 1e-6."""
    cfg = PARAMS.features
    assert cfg.engagement_half_life_days == 14 and cfg.engagement_weights["pricing_page_view"] == 2
    spec = infer_spec(export.leads, export.activities, cfg)
    snaps = pd.DataFrame({"lead_id": export.leads["lead_id"], "as_of": pd.Timestamp("2025-01-31T10:00:00")})
    raw = compute_features(snaps, export.leads, export.activities, spec, engine=engine)
    expected = (2 * round(0.5 ** (28 / 14) * 1e6) + 5 * round(0.5 ** (21 / 14) * 1e6)) / 1e6
    assert raw.loc[0, "engagement"] == expected == pytest.approx(2 * 0.25 + 5 * 0.5**1.5, abs=1e-5)
    assert raw.loc[1, "engagement"] == round(0.5 ** (25 / 14) * 1e6) / 1e6  # an e-mail click 25 days old, weight 1
    assert raw.loc[2, "engagement"] == 0  # L3's activity is after as_of
    # a shorter half-life forgets faster
    quick = infer_spec(export.leads, export.activities, cfg.model_copy(update={"engagement_half_life_days": 7}))
    faster = compute_features(snaps, export.leads, export.activities, quick, engine=engine)
    assert faster.loc[0, "engagement"] == (2 * round(0.5 ** 4 * 1e6) + 5 * round(0.5 ** 3 * 1e6)) / 1e6


@pytest.mark.parametrize("engine", ["numpy", "duckdb"])
def test_distinct_channels_and_bounces(export, engine):
    spec = infer_spec(export.leads, export.activities, PARAMS.features)
    assert spec.channels == ["email", "web"]  # phone only carries a sales call: not a marketing channel
    extra = pd.DataFrame({
        "lead_id": ["L1", "L1", "L2"],
        "occurred_at": pd.to_datetime(["2025-01-12T09:00:00", "2025-01-13T09:00:00", "2025-01-14T09:00:00"]),
        "activity_type": ["email_open", "email_bounce", "page_view"],
        "channel": ["email", "email", None],
    })
    acts = pd.concat([export.activities, extra], ignore_index=True)
    spec = infer_spec(export.leads, acts, PARAMS.features)
    snaps = pd.DataFrame({"lead_id": export.leads["lead_id"], "as_of": pd.Timestamp("2025-01-20")})
    raw = compute_features(snaps, export.leads, acts, spec, engine=engine)
    assert raw["channels_90d"].tolist() == [2.0, 1.0, 0.0]  # L1 web + email; L2's page view has no channel
    assert raw["has_bounced"].tolist() == [1.0, 0.0, 0.0]
    before = compute_features(snaps.assign(as_of=pd.Timestamp("2025-01-13T09:00:00")), export.leads, acts, spec, engine=engine)
    assert before["has_bounced"].tolist() == [0.0, 0.0, 0.0]  # the bounce at exactly as_of is not known yet
