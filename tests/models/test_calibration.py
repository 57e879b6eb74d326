"""Calibration: fitted on a later period, chosen by log loss among calibrators that keep the ranking and
the spread, stored as numbers, and robust to class weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from leadscore.features.build import encode_matrix
from leadscore.models import calibration
from leadscore.models.calibration import (apply, expected_calibration_error, fit_calibrator, judge, reliability_table,
                                          spread_report)
from leadscore.models.lgbm import LeadModel
from leadscore.training.dataset import load_dataset
from leadscore.training.train import train_model


def _synthetic(n: int, seed: int, stretch: float, shift: float):
    """True log-odds z with a 5 % base rate; a booster that reports stretch·z + shift."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-3.6, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return stretch * z + shift, y


@pytest.fixture(scope="module")
def settings(params):
    return params.train.calibration


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _step_isotonic(margin, y):
    """The step-function isotonic calibrator as models saved before stored it (and main chose it)."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
    return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def _cold_bulk(n: int, seed: int):
    """70 % cold leads that almost never win, squeezed together by the booster, and warm ones it ranks
    on the true log-odds: the shape where a step isotonic beats Platt on log loss by one big 0-step."""
    rng = np.random.default_rng(seed)
    cold = rng.random(n) < 0.7
    z = np.where(cold, rng.normal(-8.0, 1.0, n), rng.normal(-1.5, 1.2, n))
    y = (rng.random(n) < _sigmoid(z)).astype(int)
    return np.where(cold, -4 + 0.3 * (z + 8), z), y


def test_platt_undoes_an_over_confident_shifted_margin(settings):
    margin, y = _synthetic(30_000, 1, stretch=2.0, shift=1.5)
    cal = fit_calibrator(margin, y, settings)
    raw, fixed = apply(None, margin), apply(cal, margin)
    assert expected_calibration_error(y, raw) > 0.02  # under-predicts by about half
    assert expected_calibration_error(y, fixed) < 0.005
    assert abs(fixed.mean() - y.mean()) < 0.005
    if cal["method"] == "platt":  # the true map is z = (margin - 1.5) / 2
        assert cal["a"] == pytest.approx(0.5, abs=0.05) and cal["b"] == pytest.approx(-0.75, abs=0.2)
    assert set(cal["selection_log_loss"]) == {"platt", "beta", "isotonic"}  # 30,000 rows: isotonic too
    assert cal["selection_log_loss"][cal["method"]] == min(cal["selection_log_loss"].values())
    assert all(not c["rejected"] for c in cal["candidates"].values())
    assert cal["choice"][-1] == f"{cal['method']}: lowest log loss of those kept: chosen"


def test_step_isotonic_piled_leads_at_the_floor_and_the_chosen_calibrator_keeps_the_ranking(settings):
    """The failure on main: the step isotonic wins on log loss, yet on 30,000 later leads it puts most
    of them at p = 1e-6 and loses ROC AUC. The calibrator chosen now keeps AUC and the spread."""
    margin, y = _cold_bulk(1_500, 1)
    live_margin, live_y = _cold_bulk(30_000, 101)
    cut = int(len(y) * (1 - calibration.SELECT_SHARE))
    early, late = slice(0, cut), slice(cut, None)
    step = _step_isotonic(margin[early], y[early])
    platt = calibration._platt(margin[early], y[early])
    assert judge(step, margin[late], y[late], settings)["log_loss"] < judge(platt, margin[late], y[late], settings)["log_loss"]
    old = apply(_step_isotonic(margin, y), live_margin)
    old_spread = spread_report(old)
    raw_auc = roc_auc_score(live_y, live_margin)
    assert old_spread["floor_value"] == calibration.EPS and old_spread["floor_share"] > 0.5
    assert roc_auc_score(live_y, old) < raw_auc - 0.005

    cal = fit_calibrator(margin, y, settings)
    live = apply(cal, live_margin)
    spread = spread_report(live)
    assert roc_auc_score(live_y, live) >= raw_auc - settings.max_auc_loss
    assert spread["top_share"] <= settings.max_tie_share and spread["clipped_share"] == 0
    assert spread["distinct"] == len(np.unique(live_margin))
    assert cal["spread"]["rows"] == len(y) and cal["spread"]["top_share"] <= settings.max_tie_share


def test_a_step_isotonic_is_rejected_with_its_numbers(settings):
    margin, y = _cold_bulk(6_000, 3)
    step = _step_isotonic(margin[:4_000], y[:4_000])
    verdict = judge(step, margin[4_000:], y[4_000:], settings)
    text = " ".join(verdict["rejected"])
    assert verdict["auc_change"] < -settings.max_auc_loss and "ROC AUC -0.0" in text
    assert f"at p = {calibration.EPS:.3g}" in text and "distinct values on 2,000 rows" in text
    # the strict isotonic fitted on the same rows may serve
    assert judge(calibration._isotonic(margin[:4_000], y[:4_000]), margin[4_000:], y[4_000:], settings)["rejected"] == []


def test_strict_isotonic_is_stored_as_numbers_rises_everywhere_and_follows_the_steps():
    margin, y = _synthetic(5_000, 2, stretch=1.0, shift=0.0)
    cal = calibration._isotonic(margin, y)
    json.dumps(cal)  # plain numbers: goes into the model's YAML metadata, never a pickle
    probe = np.linspace(margin.min() - 3, margin.max() + 3, 2001)
    p = apply(cal, probe)
    assert np.all(np.diff(p) > 0)  # no step, no floor, no ceiling: never ties what the margin tells apart
    assert p.min() > 0 and p.max() < 1
    # on later leads, nearer the true rate than the steps it came from (here margin = true log-odds)
    fresh, _ = _synthetic(20_000, 12, stretch=1.0, shift=0.0)
    truth, steps = _sigmoid(fresh), apply(_step_isotonic(margin, y), fresh)
    assert np.mean(np.abs(apply(cal, fresh) - truth)) < np.mean(np.abs(steps - truth))
    assert abs(apply(cal, margin).mean() - y.mean()) < 0.003


def test_saved_step_isotonic_still_predicts_like_scikit_learn():
    """Models saved before the strict isotonic keep scoring exactly as they did."""
    margin, y = _synthetic(5_000, 2, stretch=1.0, shift=0.0)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(margin, y)
    probe = np.linspace(margin.min() - 1, margin.max() + 1, 1001)
    expected = np.clip(iso.predict(probe), calibration.EPS, 1 - calibration.EPS)
    np.testing.assert_allclose(apply(_step_isotonic(margin, y), probe), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(apply({"method": "none"}, probe), apply(None, probe))
    np.testing.assert_array_equal(apply({"method": "platt", "a": 0.5, "b": -1.0}, probe), _sigmoid(0.5 * probe - 1.0))
    with pytest.raises(ValueError, match="unknown calibration method 'spline'"):
        apply({"method": "spline"}, probe)


def _beta_map(margin, a, b, c):
    s = _sigmoid(margin)
    return _sigmoid(a * np.log(s) - b * np.log1p(-s) + c)


def test_beta_recovers_a_beta_miscalibration_better_than_platt(settings):
    """A booster whose low tail is too flat and high tail too steep (a ≠ b): Platt's one slope cannot
    bend both, beta calibration finds the three numbers."""
    rng = np.random.default_rng(4)
    margin = rng.normal(-2.5, 1.8, 40_000)
    y = (rng.random(len(margin)) < _beta_map(margin, 1.6, 0.4, 0.8)).astype(int)
    beta, platt = calibration._beta(margin, y), calibration._platt(margin, y)
    assert beta["form"] == "beta"
    assert beta["a"] == pytest.approx(1.6, abs=0.15) and beta["b"] == pytest.approx(0.4, abs=0.15)
    probe = np.linspace(-6, 1, 500)  # where the margins lie (mean −2.5, sd 1.8)
    truth = _beta_map(probe, 1.6, 0.4, 0.8)
    beta_err = np.abs(apply(beta, probe) - truth).max()
    assert beta_err < 0.025 and beta_err < 0.5 * np.abs(apply(platt, probe) - truth).max()
    cal = fit_calibrator(margin, y, settings)
    assert cal["method"] in ("beta", "isotonic")  # Platt loses on log loss here
    assert cal["selection_log_loss"]["beta"] < cal["selection_log_loss"]["platt"]


def test_beta_with_a_negative_coefficient_falls_back_to_platt_form():
    """Lower rates at the top than at the middle would need b < 0 (a map that falls): stored as Platt."""
    rng = np.random.default_rng(5)
    margin = rng.normal(-1.0, 2.0, 20_000)
    y = (rng.random(len(margin)) < _beta_map(margin, 1.0, -0.6, 0.0)).astype(int)
    beta = calibration._beta(margin, y)
    platt = calibration._platt(margin, y)
    assert beta["form"] == "platt" and "negative" in beta["note"]
    assert beta["a"] == beta["b"] == platt["a"] and beta["c"] == platt["b"]
    probe = np.linspace(-8, 6, 300)
    np.testing.assert_allclose(apply(beta, probe), apply(platt, probe), rtol=1e-9)


def test_a_margin_that_ranks_backwards_keeps_its_order_and_gets_its_level(settings):
    """Bank marketing on main: a calibration period where the booster ranks backwards gave Platt a
    negative slope (AUC −0.093 on the choosing rows). A calibrator cannot mend a ranking; it keeps
    the margin's order (AUC unchanged) and fits only the level, and says so."""
    rng = np.random.default_rng(8)
    margin = rng.normal(-1.5, 1.0, 3_000)
    y = (rng.random(3_000) < _sigmoid(-1.5 - 0.8 * (margin + 1.5))).astype(int)
    platt = calibration._platt(margin, y)
    assert platt["form"] == "shift" and platt["a"] == 1.0 and "≤ 0" in platt["note"]
    assert apply(platt, margin).mean() == pytest.approx(y.mean(), abs=1e-9)
    cal = fit_calibrator(margin, y, settings)
    p = apply(cal, margin)
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, margin), abs=1e-12)
    assert all(c.get("rejected") == [] for c in cal["candidates"].values() if "skipped" not in c)
    assert any(line.startswith("platt (level only): ") for line in cal["choice"])


def test_isotonic_needs_enough_won_rows(settings):
    margin, y = _synthetic(1_200, 6, stretch=1.0, shift=0.0)  # ~40 won rows to fit on
    cal = fit_calibrator(margin, y, settings)
    assert cal["method"] in ("platt", "beta")
    skipped = cal["candidates"]["isotonic"]["skipped"]
    assert skipped == f"{int(y[:800].sum())} won rows to fit on (at least {settings.isotonic_min_positives})"
    assert any(line.startswith("isotonic: ") and line.endswith(": skipped") for line in cal["choice"])


def test_spread_report_counts_the_floor_and_the_most_common_value():
    p = np.array([calibration.EPS] * 6 + [0.2, 0.2, 0.3, 1 - calibration.EPS])
    s = spread_report(p)
    assert s["rows"] == 10 and s["distinct"] == 4 and s["distinct_per_1000"] == 400
    assert s["top_share"] == s["floor_share"] == 0.6 and s["floor_value"] == calibration.EPS
    assert s["ceiling_share"] == 0.1 and s["clipped_share"] == 0.7


@pytest.mark.parametrize("method", ["beta", "isotonic", "platt"])
def test_every_calibrator_round_trips_through_a_saved_model(method, trained, tmp_path):
    """The calibrator lives in the MLmodel's YAML metadata: read back equal, scoring identically."""
    import dataclasses

    margin, y = _cold_bulk(3_000, 7)
    cal = {"beta": calibration._beta, "isotonic": calibration._isotonic, "platt": calibration._platt}[method](margin, y)
    cal["spread"] = spread_report(apply(cal, margin))
    model = dataclasses.replace(trained["model"], calibrator=cal)
    model.save(tmp_path / "m")
    again = LeadModel.load(tmp_path / "m")
    assert again.calibrator == cal
    np.testing.assert_array_equal(again.probability(margin), apply(cal, margin))


def test_reliability_bins_hold_every_row_once():
    margin, y = _synthetic(1_003, 3, 1.0, 0.0)
    table = reliability_table(y, apply(None, margin))
    assert len(table) == calibration.ECE_BINS and sum(r["rows"] for r in table) == 1_003
    assert [r["mean_predicted"] for r in table] == sorted(r["mean_predicted"] for r in table)


def test_one_class_calibration_period_is_a_clear_error(settings):
    with pytest.raises(ValueError, match="both classes"):
        fit_calibrator(np.zeros(50), np.zeros(50, dtype=int), settings)


def _shape_error(y, p) -> float:
    """ECE beyond the test period's level shift |mean p - win rate|: what the calibrator got wrong in
    the shape (ECE is at least the level shift, which a calibrator fitted on an earlier period cannot
    know; the small test exports drift, their test period wins less often than the calibration period)."""
    return expected_calibration_error(y, p) - abs(p.mean() - y.mean())


def test_class_weights_do_not_break_calibrated_probabilities(trained, params, tmp_path):
    """scale_pos_weight=20 inflates the booster's own probabilities; the calibrator, fitted on a
    later period, removes most of that on the untouched test period. Early stopping judges AUC here,
    as a team that weights classes would (on log loss the weighted booster stops after a tree or two)."""
    weighted = params.model_copy(deep=True)
    weighted.train.lgbm = {**weighted.train.lgbm, "scale_pos_weight": 20, "metric": "auc"}
    model = train_model(trained["dataset"], weighted, tmp_path / "weighted")
    table, spec = load_dataset(trained["dataset"])
    test = table[table["split"] == "test"]
    y = test["label"].to_numpy()
    X = encode_matrix(test[spec.names], spec)
    margin = model.margin(X)
    raw, calibrated = apply(None, margin), model.probability(margin)
    plain = trained["model"].probability(trained["model"].margin(X))
    assert model.info["trees"] > 20  # a real weighted booster, not a stump
    assert raw.mean() > 1.5 * plain.mean()  # the weights really distort
    assert abs(calibrated.mean() - plain.mean()) < 0.5 * abs(raw.mean() - plain.mean())
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, raw) - 0.01
    assert _shape_error(y, calibrated) < 0.01
    # stored with the model and read back
    again = LeadModel.load(tmp_path / "weighted")
    assert again.calibrator == model.calibrator
    np.testing.assert_array_equal(again.probability(margin), calibrated)


def test_served_model_is_calibrated_on_the_test_period(trained):
    """On the test period the served model's error is the period's level shift and little else."""
    m = trained["metrics"]["model"]
    table, spec = load_dataset(trained["dataset"])
    test = table[table["split"] == "test"]
    y = test["label"].to_numpy()
    p = trained["model"].probability(trained["model"].margin(encode_matrix(test[spec.names], spec)))
    assert m["ece"] == pytest.approx(expected_calibration_error(y, p), abs=1e-9)  # the metric the card shows
    assert _shape_error(y, p) < 0.01
    assert m["ece"] < 0.03
    info = trained["model"].info
    assert info["calibration_period"][0] > info["train_period"][0]
    assert trained["model"].calibrator["rows"] == info["calibration_rows"]
