"""Population stability (training/drift.py): PSI by hand, the reference bins, the drift table on
synthetic shifts with known answers, and on a demo export whose early and late snapshots differ
by construction."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from leadscore.training.drift import (
    MISSING,
    OTHER,
    STATUS_COLOURS,
    Bins,
    drift_table,
    fit_bins,
    floor_shares,
    psi,
    shares,
    write_drift,
)


def _spec(*features: tuple[str, str, str]) -> SimpleNamespace:
    """A stand-in for FeatureSpec: drift only reads name, group and kind."""
    return SimpleNamespace(features=[SimpleNamespace(name=n, group=g, kind=k) for n, g, k in features])


# --- psi ----------------------------------------------------------------------------------------


def test_psi_of_hand_computed_shares():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert expected == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), rel=1e-12)  # ≈ 0.2747
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(expected, rel=1e-12)


def test_identical_shares_have_zero_psi():
    s = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(s, s) == 0.0
    assert psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == 0.0  # the floor on both sides cancels


def test_psi_is_non_negative_on_random_pairs():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(2, 12))
        e, a = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
        a[rng.random(k) < 0.2] = 0.0  # empty bins too
        if a.sum() == 0:
            a[0] = 1.0
        assert psi(e, a) >= 0.0
        assert psi(a, e) >= 0.0


def test_the_floor_keeps_psi_finite_with_the_documented_value():
    expected, actual = np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.4, 0.1])
    # The rule: shares below 1e-4 are raised to it, then the vector is divided by its new sum.
    e = np.array([0.5, 0.5, 1e-4]) / 1.0001
    np.testing.assert_allclose(floor_shares(expected), e, rtol=1e-15)
    np.testing.assert_array_equal(floor_shares(actual), actual)  # nothing below the floor: unchanged
    by_hand = sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, actual))
    value = psi(expected, actual)
    assert math.isfinite(value)
    assert value == pytest.approx(by_hand, rel=1e-12)
    # Dominated by the bin empty in the reference, ≈ 0.1·ln(0.1/1e-4) = 0.691, plus 0.022 from the 40 %.
    assert value == pytest.approx(0.7124, abs=1e-4)


def test_psi_refuses_shares_it_cannot_compare():
    with pytest.raises(ValueError, match="differ in length"):
        psi(np.array([0.5, 0.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        psi(np.array([0.5, 0.5]), np.array([1.5, -0.5]))
    with pytest.raises(ValueError, match="not all zero"):
        psi(np.array([0.5, 0.5]), np.array([0.0, 0.0]))


# --- bins and shares ------------------------------------------------------------------------------


def test_deciles_of_one_to_hundred_give_ten_equal_bins_and_missing_its_own():
    values = pd.Series(np.r_[np.arange(1, 101, dtype=float), [np.nan] * 25], name="employees")
    bins = fit_bins(values, "numeric")
    assert bins.edges == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    assert bins.size == 11
    assert bins.labels[0] == "≤ 10" and bins.labels[1] == "10–20" and bins.labels[-2] == "> 90"
    assert bins.labels[-1] == MISSING
    np.testing.assert_allclose(shares(values, bins), [0.08] * 10 + [0.2])
    np.testing.assert_allclose(shares(values.dropna(), bins), [0.1] * 10 + [0.0])


def test_numeric_bins_are_closed_on_the_right_and_open_at_the_ends():
    bins = fit_bins(pd.Series(np.arange(1, 101, dtype=float)), "numeric")
    index = bins.index(pd.Series([10.0, 10.5, -1e9, 1e9, np.inf, -np.inf, None], dtype="float64"))
    assert index.tolist() == [0, 1, 0, 9, 9, 0, 10]


def test_a_mostly_zero_count_gets_fewer_whole_number_bins():
    counts = pd.Series([0] * 70 + [1] * 20 + [2] * 10, dtype="float64")
    bins = fit_bins(counts, "numeric")
    assert bins.edges == [0.0, 1.0]
    np.testing.assert_allclose(shares(counts, bins), [0.7, 0.2, 0.1, 0.0])


def test_a_reference_without_values_has_one_bin_and_missing():
    bins = fit_bins(pd.Series([np.nan, np.nan]), "numeric")
    np.testing.assert_allclose(shares(pd.Series([1.0, np.nan, 3.0, 4.0]), bins), [0.75, 0.25])


def test_categories_unseen_in_the_reference_go_to_other():
    reference = pd.Series(["DE", "AT", "DE", None, "other"], dtype="object")
    bins = fit_bins(reference, "category")
    assert bins.levels == ["AT", "DE", "other"]  # a real level called "other" …
    assert bins.labels == ["AT", "DE", "other", OTHER, MISSING]  # … is not the unseen bin
    np.testing.assert_allclose(shares(reference, bins), [0.2, 0.4, 0.2, 0.0, 0.2])
    recent = pd.Series(["DE", "US", "US", None], dtype="object")
    np.testing.assert_allclose(shares(recent, bins), [0.0, 0.25, 0.0, 0.5, 0.25])


def test_bins_refuse_an_unknown_kind_and_empty_values():
    with pytest.raises(ValueError, match="kind must be"):
        fit_bins(pd.Series([1.0]), "ordinal")
    with pytest.raises(ValueError, match="no values"):
        shares(pd.Series([], dtype="float64", name="employees"), Bins("numeric", edges=[1.0]))


# --- drift_table on synthetic data ------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(42)
    n = 20_000
    reference = pd.DataFrame({
        "employees": rng.normal(0.0, 1.0, n),
        "engagement": rng.normal(0.0, 1.0, n),
        "industry": np.repeat(["software", "retail"], n // 2).astype(object),
    })
    recent = pd.DataFrame({
        "employees": rng.normal(0.0, 1.0, n),  # the same population, a fresh sample
        "engagement": rng.normal(2.0, 1.0, n),  # shifted by two standard deviations
        "industry": np.repeat(["software", "retail"], [3 * n // 10, 7 * n // 10]).astype(object),  # 50/50 → 30/70
    })
    spec = _spec(("employees", "fit", "numeric"), ("engagement", "interest", "numeric"), ("industry", "fit", "category"))
    score_ref, score_new = rng.beta(2, 8, n), rng.beta(2, 8, n)
    table = drift_table(reference, recent, spec, score_reference=score_ref, score_recent=score_new)
    return table.set_index("feature"), table


def test_a_two_sd_shift_is_major(synthetic):
    rows, _ = synthetic
    # The reference's top decile (> 1.28) holds 76 % of N(2, 1) instead of 10 %: that bin alone
    # adds (0.76 − 0.10) · ln(7.6) ≈ 1.35, and every other term is non-negative.
    assert rows.loc["engagement", "psi"] > 1.3
    assert rows.loc["engagement", "status"] == "major"
    assert rows.loc["engagement", "top_move"].startswith("engagement > 1.2")


def test_an_unchanged_feature_is_stable(synthetic):
    rows, _ = synthetic
    # Sampling noise only: about 9 · (2 / 20 000) ≈ 0.001.
    assert rows.loc["employees", "psi"] < 0.01
    assert rows.loc["employees", "status"] == "stable"


def test_a_moderate_change_of_category_mix_is_a_shift(synthetic):
    rows, _ = synthetic
    # Bins retail, software, (other), (missing): the last two empty on both sides, floored.
    e = np.array([0.5, 0.5, 1e-4, 1e-4]) / 1.0002
    a = np.array([0.7, 0.3, 1e-4, 1e-4]) / 1.0002
    by_hand = float(np.sum((a - e) * np.log(a / e)))
    assert by_hand == pytest.approx(0.2 * math.log(1.4) + 0.2 * math.log(1 / 0.6), abs=1e-3)  # ≈ 0.169
    assert rows.loc["industry", "psi"] == pytest.approx(by_hand, rel=1e-12)
    assert rows.loc["industry", "status"] == "shift"
    assert rows.loc["industry", "top_move"] in ("industry retail: 50% → 70%", "industry software: 50% → 30%")


def test_the_table_has_one_row_per_feature_plus_the_score(synthetic):
    rows, table = synthetic
    assert sorted(table["feature"]) == ["employees", "engagement", "industry", "score"]
    assert table.columns.tolist() == ["feature", "group", "kind", "psi", "status", "n_reference", "n_recent", "top_move"]
    assert table["psi"].is_monotonic_decreasing
    assert rows.loc["score", "group"] == "score" and rows.loc["score", "status"] == "stable"
    assert rows.loc["industry", "group"] == "fit" and rows.loc["engagement", "group"] == "interest"
    assert (table["n_reference"] == 20_000).all() and (table["n_recent"] == 20_000).all()


def test_thresholds_are_parameters():
    reference = pd.DataFrame({"industry": ["a", "b"] * 50})
    recent = pd.DataFrame({"industry": ["a"] * 30 + ["b"] * 70})
    spec = _spec(("industry", "fit", "category"))
    assert drift_table(reference, recent, spec)["status"].item() == "shift"
    assert drift_table(reference, recent, spec, warn=0.2, alert=0.3)["status"].item() == "stable"
    assert drift_table(reference, recent, spec, warn=0.05, alert=0.15)["status"].item() == "major"


def test_drift_table_says_what_is_wrong_with_its_input():
    spec = _spec(("industry", "fit", "category"), ("employees", "fit", "numeric"))
    good = pd.DataFrame({"industry": ["a"], "employees": [1.0]})
    with pytest.raises(ValueError, match="recent table lacks 1 model feature.*employees"):
        drift_table(good, good[["industry"]], spec)
    with pytest.raises(ValueError, match="reference table has no rows"):
        drift_table(good.iloc[:0], good, spec)
    with pytest.raises(ValueError, match="both score_reference and score_recent"):
        drift_table(good, good, spec, score_reference=np.array([0.1]))
    with pytest.raises(ValueError, match="warn < alert"):
        drift_table(good, good, spec, warn=0.3, alert=0.2)


def test_write_drift_on_a_calm_table(tmp_path, synthetic):
    _, table = synthetic
    calm = table[table["status"] == "stable"]
    summary = write_drift(calm, tmp_path)
    assert summary == {"alerts": [], "warnings": [], "max_psi": pytest.approx(calm["psi"].max()), "features": 1,
                       "score_psi": pytest.approx(calm.loc[calm["feature"] == "score", "psi"].item())}
    assert (tmp_path / "drift.png").stat().st_size > 5_000


# --- on a demo export ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory, params):
    """Training snapshots of a 1500-lead demo export: features, spec, and the first and last 120
    days of snapshot dates. The export starts with no lead older than the time since its start, so
    the early snapshots are of young leads only: ``lead_age_days`` must drift."""
    import lightgbm as lgb

    from leadscore.demo import write_demo_export
    from leadscore.features.build import compute_features, encode_matrix
    from leadscore.features.contract import read_export
    from leadscore.features.snapshots import scoring_snapshots
    from tests.helpers import training_features

    folder = tmp_path_factory.mktemp("drift") / "demo"
    write_demo_export(folder, n_leads=1500, seed=3)
    export = read_export(folder)
    snaps, spec, raw = training_features(export, params)
    early = (snaps["as_of"] < snaps["as_of"].min() + pd.Timedelta(days=120)).to_numpy()
    late = (snaps["as_of"] >= snaps["as_of"].max() - pd.Timedelta(days=120)).to_numpy()
    X = encode_matrix(raw, spec)
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1, "seed": 1},
                        lgb.Dataset(X[early], snaps["label"].to_numpy()[early]), num_boost_round=30)
    table = drift_table(raw.loc[early], raw.loc[late], spec,
                        score_reference=booster.predict(X[early]), score_recent=booster.predict(X[late]))
    open_leads = scoring_snapshots(export, export.data_end)
    scoring = compute_features(open_leads, export.leads, export.activities, spec)
    return {"spec": spec, "table": table, "raw": raw, "scoring": scoring,
            "n_early": int(early.sum()), "n_late": int(late.sum())}


def test_demo_table_covers_every_feature_with_a_finite_psi(demo):
    table, spec = demo["table"], demo["spec"]
    features = table[table["group"] != "score"]
    assert sorted(features["feature"]) == sorted(spec.names)
    assert len(table) == len(spec.features) + 1
    assert np.isfinite(table["psi"]).all() and (table["psi"] >= 0).all()
    assert (features["n_reference"] == demo["n_early"]).all() and (features["n_recent"] == demo["n_late"]).all()
    groups = {f.name: f.group for f in spec.features}
    assert (features["group"] == features["feature"].map(groups)).all()


def test_demo_lead_age_drifts_by_construction(demo):
    rows = demo["table"].set_index("feature")
    assert rows.loc["lead_age_days", "status"] == "major"
    # Early snapshots are all younger than 120 days; the top move is the oldest bin filling up.
    assert rows.loc["lead_age_days", "top_move"].startswith("lead_age_days > ")
    assert rows.loc["days_since_first_activity", "status"] == "major"  # age's twin: history grows with age


def test_open_leads_today_are_older_and_colder_than_any_training_snapshot(demo):
    """The population the service scores (every open lead) is not the one it learned from
    (snapshots up to ``max_snapshot_age_days``): interest features drift, fit features do not."""
    table = drift_table(demo["raw"], demo["scoring"], demo["spec"]).set_index("feature")
    assert table.loc["lead_age_days", "psi"] > 1.0
    assert table.loc["days_since_last_activity", "status"] == "major"
    fit = table[table["group"] == "fit"]
    assert fit["psi"].max() < 0.1  # who the leads are did not change over time in the demo


def test_write_drift_writes_the_csv_and_a_coloured_png(demo, tmp_path):
    from matplotlib.image import imread

    table = demo["table"]
    summary = write_drift(table, tmp_path / "drift")
    written = pd.read_csv(tmp_path / "drift" / "drift.csv")
    assert written["feature"].tolist() == table["feature"].tolist()
    np.testing.assert_allclose(written["psi"], table["psi"])
    assert summary["features"] == len(demo["spec"].features)
    assert summary["max_psi"] == pytest.approx(table["psi"].max())
    assert "lead_age_days" in summary["alerts"]
    assert set(summary["alerts"]) == set(table.loc[table["status"] == "major", "feature"])
    assert set(summary["warnings"]) == set(table.loc[table["status"] == "shift", "feature"])
    assert summary["score_psi"] == pytest.approx(table.loc[table["feature"] == "score", "psi"].item())
    image = imread(tmp_path / "drift" / "drift.png")[..., :3]
    assert image.std() > 0.05  # not blank
    red = np.array([int(STATUS_COLOURS["major"][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    assert (np.abs(image - red).max(axis=-1) < 0.02).sum() > 200  # the major bars are drawn in red
