"""Calibration: fitted on a later period, chosen by log loss, stored as numbers, and robust to class weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from leadscore.features.build import encode_matrix
from leadscore.models import calibration
from leadscore.models.calibration import apply, expected_calibration_error, fit_calibrator, reliability_table
from leadscore.models.lgbm import LeadModel
from leadscore.training.dataset import load_dataset
from leadscore.training.train import train_model


def _synthetic(n: int, seed: int, stretch: float, shift: float):
    """True log-odds z with a 5 % base rate; a booster that reports stretch·z + shift."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-3.6, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return stretch * z + shift, y


def test_platt_undoes_an_over_confident_shifted_margin():
    margin, y = _synthetic(30_000, 1, stretch=2.0, shift=1.5)
    cal = fit_calibrator(margin, y)
    raw, fixed = apply(None, margin), apply(cal, margin)
    assert expected_calibration_error(y, raw) > 0.02  # under-predicts by about half
    assert expected_calibration_error(y, fixed) < 0.005
    assert abs(fixed.mean() - y.mean()) < 0.005
    if cal["method"] == "platt":  # the true map is z = (margin - 1.5) / 2
        assert cal["a"] == pytest.approx(0.5, abs=0.05) and cal["b"] == pytest.approx(-0.75, abs=0.2)
    assert set(cal["selection_log_loss"]) == {"platt", "isotonic"}
    assert cal["selection_log_loss"][cal["method"]] == min(cal["selection_log_loss"].values())


def test_isotonic_is_stored_as_numbers_and_predicts_like_scikit_learn():
    margin, y = _synthetic(5_000, 2, stretch=1.0, shift=0.0)
    cal = calibration._isotonic(margin, y)
    json.dumps(cal)  # plain numbers: goes into the model's YAML metadata, never a pickle
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(margin, y)
    probe = np.linspace(margin.min() - 1, margin.max() + 1, 1001)
    expected = np.clip(iso.predict(probe), calibration.EPS, 1 - calibration.EPS)
    np.testing.assert_allclose(apply(cal, probe), expected, rtol=0, atol=1e-12)


def test_reliability_bins_hold_every_row_once():
    margin, y = _synthetic(1_003, 3, 1.0, 0.0)
    table = reliability_table(y, apply(None, margin))
    assert len(table) == calibration.ECE_BINS and sum(r["rows"] for r in table) == 1_003
    assert [r["mean_predicted"] for r in table] == sorted(r["mean_predicted"] for r in table)


def test_one_class_calibration_period_is_a_clear_error():
    with pytest.raises(ValueError, match="both classes"):
        fit_calibrator(np.zeros(50), np.zeros(50, dtype=int))


def test_class_weights_do_not_break_calibrated_probabilities(trained, params, tmp_path):
    """scale_pos_weight=20 inflates the booster's own probabilities; the calibrator, fitted on a
    later period, brings them back to what the unweighted model says, on the untouched test period.
    (The small test export drifts: its test period wins less often than its calibration period,
    so both models over-predict it alike; the comparison is between the two.)"""
    weighted = params.model_copy(deep=True)
    weighted.train.lgbm = {**weighted.train.lgbm, "scale_pos_weight": 20}
    model = train_model(trained["dataset"], weighted, tmp_path / "weighted")
    table, spec = load_dataset(trained["dataset"])
    test = table[table["split"] == "test"]
    y = test["label"].to_numpy()
    X = encode_matrix(test[spec.names], spec)
    margin = model.margin(X)
    raw, calibrated = apply(None, margin), model.probability(margin)
    plain = trained["model"].probability(trained["model"].margin(X))
    assert raw.mean() > 1.5 * plain.mean()  # the weights really distort
    assert abs(calibrated.mean() - plain.mean()) < 0.005
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, raw) - 0.01
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, plain) + 0.005
    # stored with the model and read back
    again = LeadModel.load(tmp_path / "weighted")
    assert again.calibrator == model.calibrator
    np.testing.assert_array_equal(again.probability(margin), calibrated)


def test_served_model_is_calibrated_on_the_test_period(trained):
    m = trained["metrics"]["model"]
    assert m["ece"] < 0.02
    info = trained["model"].info
    assert info["calibration_period"][0] > info["train_period"][0]
    assert trained["model"].calibrator["rows"] == info["calibration_rows"]
