"""Calibrated probabilities from LightGBM margins, and the measures that say whether they are right.

A calibrator maps the booster's raw margin (log-odds) to a probability. It is fitted on a period
*after* the one the booster learned from, so it corrects what the booster gets wrong about the
future (drift, class weights, over-confident leaves). Candidates are fitted on the earlier part of
the (time-ordered) calibration rows and judged on the later part, as scoring will meet them:

- ``platt``: p = σ(a · margin + b), two numbers; robust with few positives.
- ``beta`` (Kull, Silva Filho & Flach 2017): σ(a · ln s + b · (−ln(1 − s)) + c) of the booster's own
  sigmoid s, three numbers with a, b ≥ 0; bends the two tails separately, which Platt cannot.
- ``isotonic``: monotone in the data's own shape; only with enough won rows and steps
  (``train.calibration`` in params.yaml), and interpolated strictly (see :func:`_isotonic`).

A candidate that costs ROC AUC against the raw margin, or piles rows onto one value (a floor of
identical low scores), is rejected whatever its log loss: grades and rankings are cut from these
probabilities, and ties among leads cannot be ranked. Of the rest the lowest log loss wins and is
refit on all calibration rows. The calibrator dict records every candidate's verdict and why, and the
chosen one's :func:`spread_report`. Everything is stored as plain numbers in the model's metadata
(JSON/YAML), never pickled; :func:`apply` still reads what older models stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import brentq
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from leadscore.config.params import CalibrationParams

ECE_BINS = 10
# Choose the method on the last third of the calibration period, fitting on the first two thirds.
SELECT_SHARE = 1 / 3
EPS = 1e-6
# Plain maximum-likelihood fits of two or three numbers, not regularised ones.
_UNREGULARISED = 1e6


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _beta_features(margin: np.ndarray) -> np.ndarray:
    """[ln s, −ln(1 − s)] of s = σ(margin), computed without forming s (no log of 0)."""
    return np.column_stack([-np.logaddexp(0.0, -margin), np.logaddexp(0.0, margin)])


def _platt(margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """σ(a · margin + b). A slope a ≤ 0 says the margin does not rank these rows; a calibrator cannot
    mend a ranking, and a negative slope would turn it upside down (or a zero one erase it). Then
    the margin's order is kept and only its level is fitted: a = 1, b from Σ σ(margin + b) = Σ y."""
    lr = LogisticRegression(C=_UNREGULARISED, solver="lbfgs", max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a > 0:
        return {"method": "platt", "a": a, "b": b}
    reach = 100.0 + float(np.abs(margin).max())
    shift = brentq(lambda c: float(np.sum(_sigmoid(margin + c)) - np.sum(y)), -reach, reach)
    return {"method": "platt", "a": 1.0, "b": float(shift), "form": "shift",
            "note": f"Platt slope {a:.3g} ≤ 0: the margin does not rank these rows; its order kept, its level fitted"}


def _beta(margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Beta calibration. A negative a or b would make the map fall somewhere (rank backwards in one
    tail); then the Platt form a = b (σ(a · margin + c)) is stored instead, ``form`` says which."""
    lr = LogisticRegression(C=_UNREGULARISED, solver="lbfgs", max_iter=1000)
    lr.fit(_beta_features(margin), y)
    a, b = (float(v) for v in lr.coef_[0])
    if a >= 0 and b >= 0 and a + b > 0:
        return {"method": "beta", "a": a, "b": b, "c": float(lr.intercept_[0]), "form": "beta"}
    platt = _platt(margin, y)
    note = f"beta coefficients a = {a:.3g}, b = {b:.3g}: one is negative, Platt form used"
    return {"method": "beta", "a": platt["a"], "b": platt["a"], "c": platt["b"], "form": "platt",
            "note": f"{note}; {platt['note']}" if "note" in platt else note}


def _isotonic(margin: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Isotonic regression made strictly increasing, so it never ties two leads the margin tells apart.

    Plain isotonic regression is a step function: every lead in a step gets the same probability,
    and its lowest step is usually a rate of exactly 0 over the bulk of cold leads (clipped to
    ``EPS``, that was 54 % of live leads at p = 1e-6 after one retrain). Here:

    1. the pool-adjacent-violators steps are fitted as usual;
    2. each step's rate is (won + r) / (rows + 1), one pseudo-row at the overall rate r, so no step
       is 0 or 1 and a big step of lost leads stays lower than a small one (monotonicity is restored
       by pooling again, on the steps, weighted by their rows);
    3. the knots are the steps' mean margins with those rates as log-odds, joined by straight lines
       in log-odds: strictly increasing between the first and the last knot;
    4. beyond them, straight on in log-odds with the Platt slope of the same rows (if it is positive,
       else the slope from the first to the last knot): no floor and no ceiling, ranked like the margin.

    The shape between the knots is the data's own; only the ties are gone. Stored as numbers:
    ``x`` (margins), ``logit`` (log-odds), ``slope_low``, ``slope_high``, ``scale: logit``.
    """
    order = np.argsort(margin, kind="stable")
    m, t = margin[order], y[order].astype("float64")
    steps = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(m, t).predict(m)
    _, step = np.unique(steps, return_inverse=True)  # steps are non-decreasing along m: step ids too
    rows, won = np.bincount(step).astype("float64"), np.bincount(step, weights=t)
    centre = np.bincount(step, weights=m) / rows
    rate = (won + t.mean()) / (rows + 1.0)
    pooled = IsotonicRegression().fit(centre, rate, sample_weight=rows + 1.0).predict(centre)
    _, knot = np.unique(pooled, return_inverse=True)
    x = np.bincount(knot, weights=centre * rows) / np.bincount(knot, weights=rows)
    r = np.bincount(knot, weights=pooled * (rows + 1.0)) / np.bincount(knot, weights=rows + 1.0)
    logit = np.log(r) - np.log1p(-r)
    span = (logit[-1] - logit[0]) / (x[-1] - x[0]) if len(x) > 1 else 0.0
    platt = _platt(margin, y)
    slope = span if "form" in platt else platt["a"]  # a level-only Platt fit says nothing about slopes
    return {"method": "isotonic", "scale": "logit", "x": x.tolist(), "logit": logit.tolist(),
            "slope_low": float(slope), "slope_high": float(slope), "levels": int(len(x))}


_FITS = {"platt": _platt, "beta": _beta, "isotonic": _isotonic}


def apply(calibrator: dict[str, Any] | None, margin: np.ndarray) -> np.ndarray:
    """Probabilities for raw margins; without a calibrator, the booster's own sigmoid."""
    m = np.asarray(margin, dtype="float64")
    if calibrator is None or calibrator.get("method") == "none":
        return _sigmoid(m)
    method = calibrator["method"]
    if method == "platt":
        return _sigmoid(calibrator["a"] * m + calibrator["b"])
    if method == "beta":
        f = _beta_features(m.reshape(-1)).reshape(m.shape + (2,))
        return _sigmoid(calibrator["a"] * f[..., 0] + calibrator["b"] * f[..., 1] + calibrator["c"])
    if method == "isotonic" and calibrator.get("scale") == "logit":
        x, logit = np.asarray(calibrator["x"]), np.asarray(calibrator["logit"])
        z = np.interp(m, x, logit)
        z = np.where(m < x[0], logit[0] + calibrator["slope_low"] * (m - x[0]), z)
        z = np.where(m > x[-1], logit[-1] + calibrator["slope_high"] * (m - x[-1]), z)
        return _sigmoid(z)
    if method == "isotonic":  # the step function models saved before the strict one stored
        # Never exactly 0 or 1: a calibrated "impossible" is still only an estimate.
        return np.clip(np.interp(m, calibrator["x"], calibrator["y"]), EPS, 1 - EPS)
    raise ValueError(f"unknown calibration method {method!r} (known: none, platt, beta, isotonic)")


def spread_report(p: np.ndarray) -> dict[str, Any]:
    """How spread probabilities are: distinct values (also per 1,000 rows), the share of rows at the
    most common value, at the lowest (the floor), at the highest, and at the ``EPS`` clip."""
    p = np.asarray(p, dtype="float64").reshape(-1)
    if not len(p):
        return {"rows": 0, "distinct": 0}
    values, counts = np.unique(p, return_counts=True)
    top = int(counts.argmax())
    return {
        "rows": int(len(p)),
        "distinct": int(len(values)),
        "distinct_per_1000": round(1000 * len(values) / len(p), 1),
        "top_share": float(counts[top] / len(p)),
        "top_value": float(values[top]),
        "floor_share": float(counts[0] / len(p)),
        "floor_value": float(values[0]),
        "ceiling_share": float(counts[-1] / len(p)),
        "clipped_share": float(np.mean((p <= EPS) | (p >= 1 - EPS))),
    }


def judge(calibrator: dict[str, Any], margin: np.ndarray, y: np.ndarray, settings: CalibrationParams) -> dict[str, Any]:
    """Log loss, ROC AUC against the raw margin's, and spread of one calibrator on rows it did not
    learn from; ``rejected`` lists why it may not serve (empty: it may).

    A spread limit the raw margin itself breaks (a booster with few trees has few distinct margins)
    is no fault of the calibrator: it is measured against the margin's own spread."""
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y)
    p = apply(calibrator, margin)
    raw_auc, auc = float(roc_auc_score(y, margin)), float(roc_auc_score(y, p))
    raw, spread = spread_report(margin), spread_report(p)
    rejected = []
    if auc < raw_auc - settings.max_auc_loss:
        rejected.append(f"ROC AUC {auc - raw_auc:+.3f} against the raw margin (at most −{settings.max_auc_loss:g})")
    top_limit = max(settings.max_tie_share, raw["top_share"])
    if spread["top_share"] > top_limit + 1e-12:
        rejected.append(f"{spread['top_share']:.0%} of rows at p = {spread['top_value']:.3g} "
                        f"(at most {top_limit:.0%} at one value)")
    need = int(min(np.ceil(settings.min_distinct_per_1000 * len(p) / 1000), raw["distinct"]))
    if spread["distinct"] < need:
        rejected.append(f"{spread['distinct']:,} distinct values on {len(p):,} rows (at least {need:,})")
    return {"log_loss": float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])), "roc_auc": auc,
            "auc_change": auc - raw_auc, "distinct": spread["distinct"], "top_share": spread["top_share"],
            "floor_share": spread["floor_share"], "rejected": rejected}


def _sentence(method: str, verdict: dict[str, Any], rows: int) -> str:
    if "skipped" in verdict:
        return f"{method}: {verdict['skipped']}: skipped"
    name = {"beta": f"{method} (Platt form)", "platt": f"{method} (level only)"}.get(method, method) \
        if "note" in verdict else method
    head = (f"{name}: log loss {verdict['log_loss']:.4f}, {verdict['distinct']:,} distinct values on {rows:,} rows, "
            f"AUC {verdict['auc_change']:+.3f}")
    return f"{head}: rejected ({'; '.join(verdict['rejected'])})" if verdict["rejected"] else head


def fit_calibrator(margin: np.ndarray, y: np.ndarray, settings: CalibrationParams) -> dict[str, Any]:
    """Fit the candidates on the earlier part of the (time-ordered) rows, judge them on the later part
    (:func:`judge`), keep the lowest log loss among those not rejected, refit it on all rows.

    Platt and beta are strictly increasing maps (AUC kept); isotonic is a candidate only with at
    least ``settings.isotonic_min_positives`` won rows in the earlier part and
    ``settings.isotonic_min_levels`` steps. When every candidate is rejected, or either part lacks a
    class, Platt serves: two numbers, and it never reorders leads. The dict records ``candidates``
    (each one's numbers and verdict), ``choice`` (one sentence per candidate), ``spread``
    (:func:`spread_report` on all calibration rows) and ``selection_log_loss``."""
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y, dtype="int64")
    if len(np.unique(y)) < 2:
        raise ValueError(f"calibration needs both classes; the calibration period has {int(y.sum())} won of {len(y)}")
    cut = int(len(y) * (1 - SELECT_SHARE))
    early, late = slice(0, cut), slice(cut, None)
    verdicts: dict[str, dict[str, Any]] = {}
    if len(np.unique(y[early])) == 2 and len(np.unique(y[late])) == 2:
        for method, fit in _FITS.items():
            won = int(y[early].sum())
            if method == "isotonic" and won < settings.isotonic_min_positives:
                verdicts[method] = {"skipped": f"{won} won rows to fit on (at least {settings.isotonic_min_positives})"}
                continue
            candidate = fit(margin[early], y[early])
            if method == "isotonic" and candidate["levels"] < settings.isotonic_min_levels:
                verdicts[method] = {"skipped": f"{candidate['levels']} steps (at least {settings.isotonic_min_levels})"}
                continue
            verdicts[method] = judge(candidate, margin[late], y[late], settings)
            if "note" in candidate:
                verdicts[method]["note"] = candidate["note"]
        kept = {k: v["log_loss"] for k, v in verdicts.items() if "log_loss" in v and not v["rejected"]}
        method = min(kept, key=kept.get) if kept else "platt"
        choice = [_sentence(k, v, len(y) - cut) for k, v in verdicts.items()]
        choice.append(f"{method}: lowest log loss of those kept: chosen" if kept else
                      "platt: every candidate rejected; the two-number fit serves: chosen")
    else:
        method = "platt"  # too few positives to compare: the two-number fit is the safe one
        choice = [f"platt: {int(y[early].sum())} won in the earlier and {int(y[late].sum())} in the later part, "
                  "too few to compare candidates: chosen"]
    chosen = _FITS[method](margin, y)
    chosen["selection_log_loss"] = {k: v["log_loss"] for k, v in verdicts.items() if "log_loss" in v}
    chosen["candidates"] = verdicts
    chosen["choice"] = choice
    chosen["selection_rows"] = int(len(y) - cut)
    chosen["spread"] = spread_report(apply(chosen, margin))
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
