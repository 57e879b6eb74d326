"""Calibrated probabilities from LightGBM margins, and the measures that say whether they are right.

A calibrator maps the booster's raw margin (log-odds) to a probability. It is fitted on a period
*after* the one the booster learned from, so it corrects what the booster gets wrong about the
future (drift, class weights, over-confident leaves). Two methods, chosen by log loss on the last
part of the calibration period after fitting on the part before it (time order, like scoring):

- ``platt``: p = 1 / (1 + exp(-(a · margin + b))), two numbers; robust with few positives.
- ``isotonic``: a monotone step function through (margin, rate) points, linearly interpolated
  between them (what scikit-learn's ``IsotonicRegression.predict`` does); flexible, needs more data.

Both are stored as plain numbers in the model's metadata (JSON/YAML), never pickled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

ECE_BINS = 10
# Choose the method on the last third of the calibration period, fitting on the first two thirds.
SELECT_SHARE = 1 / 3
EPS = 1e-6


def _platt(margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    # Large C: a plain maximum-likelihood fit of two numbers, not a regularised one.
    lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y)
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def _isotonic(margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(margin, y)
    return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def apply(calibrator: dict[str, Any] | None, margin: np.ndarray) -> np.ndarray:
    """Probabilities for raw margins; without a calibrator, the booster's own sigmoid."""
    m = np.asarray(margin, dtype="float64")
    if calibrator is None or calibrator.get("method") == "none":
        return 1.0 / (1.0 + np.exp(-m))
    if calibrator["method"] == "platt":
        return 1.0 / (1.0 + np.exp(-(calibrator["a"] * m + calibrator["b"])))
    if calibrator["method"] == "isotonic":
        # Never exactly 0 or 1: a calibrated "impossible" is still only an estimate.
        return np.clip(np.interp(m, calibrator["x"], calibrator["y"]), EPS, 1 - EPS)
    raise ValueError(f"unknown calibration method {calibrator['method']!r}")


def fit_calibrator(margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Fit Platt and isotonic on the earlier part of the (time-ordered) rows, keep the one with
    the lower log loss on the later part, and refit it on all rows. Adds the comparison."""
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y, dtype="int64")
    if len(np.unique(y)) < 2:
        raise ValueError(f"calibration needs both classes; the calibration period has {int(y.sum())} won of {len(y)}")
    cut = int(len(y) * (1 - SELECT_SHARE))
    early, late = slice(0, cut), slice(cut, None)
    losses = {}
    if len(np.unique(y[early])) == 2 and len(np.unique(y[late])) == 2:
        for fit in (_platt, _isotonic):
            candidate = fit(margin[early], y[early])
            losses[candidate["method"]] = float(log_loss(y[late], np.clip(apply(candidate, margin[late]), EPS, 1 - EPS), labels=[0, 1]))
        method = min(losses, key=losses.get)
    else:
        method = "platt"  # too few positives to compare: the two-number fit is the safe one
    chosen = (_platt if method == "platt" else _isotonic)(margin, y)
    chosen["selection_log_loss"] = losses
    chosen["rows"] = int(len(y))
    chosen["positives"] = int(y.sum())
    return chosen


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over equal-count bins of the predicted probability: Σ (n_b / n) · |mean p_b − rate_b|.

    Equal-count (not equal-width) bins, because with a few percent positives nearly every lead
    falls in the lowest tenth of [0, 1] and equal-width bins would measure almost nothing."""
    table = reliability_table(y, p, bins)
    n = sum(row["rows"] for row in table)
    return float(sum(row["rows"] / n * abs(row["mean_predicted"] - row["observed_rate"]) for row in table))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per equal-count bin of p: rows, mean predicted probability, observed win rate."""
    y, p = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, min(bins, len(p))):
        if len(part):
            out.append({"rows": int(len(part)), "mean_predicted": float(p[part].mean()), "observed_rate": float(y[part].mean())})
    return out
