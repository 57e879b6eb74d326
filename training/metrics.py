"""How good a scorer is on a set of rows, with bootstrap intervals and the sales-capacity view.

Every scorer (the model, the SLA rules, the logistic regression) is measured on exactly the same
rows. Besides ranking and calibration (ROC AUC, PR AUC, log loss, Brier, ECE), a head of sales
asks one question: *if my team can follow up k leads a week, how many of them win?* ``top_k``
answers it: in every week the k highest-scored leads are "called", and their win rate, the lift
over the week's average lead and the share of all wins they hold are reported.

Intervals come from a bootstrap over **leads**, not rows: the weekly snapshots of one lead are
alike, and resampling them one by one would make the intervals too narrow. The same resamples
measure every scorer, so the differences between scorers get intervals of their own ("the model
beats the rules by 0.04 AUC, 95 % interval 0.02 to 0.06").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from leadscore.models.calibration import expected_calibration_error

# The metrics where lower is better; for the rest, higher is better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_k_win_rate", "top_k_lift", "top_k_share_of_wins")


def week_codes(as_of: pd.Series | np.ndarray) -> np.ndarray:
    """An integer per calendar week (Monday start) of each row's scoring moment."""
    ts = pd.DatetimeIndex(pd.to_datetime(as_of)).as_unit("ns")  # pandas 3 may read dates in µs
    return (ts.normalize() - pd.to_timedelta(ts.dayofweek, unit="D")).asi8 // 86_400_000_000_000 // 7


def top_k(y: np.ndarray, p: np.ndarray, week: np.ndarray, k: int) -> dict[str, float]:
    """In every week, the ``k`` highest-scored rows are followed up: their win rate, the lift over
    the base rate of all rows, and the share of all wins among them (ties keep row order)."""
    y = np.asarray(y, dtype=float)
    order = np.lexsort((-np.asarray(p, dtype=float), week))
    w = week[order]
    starts = np.r_[0, np.flatnonzero(w[1:] != w[:-1]) + 1]
    rank = np.arange(len(w)) - np.repeat(starts, np.diff(np.r_[starts, len(w)]))
    chosen = order[rank < k]
    base = y.mean() if len(y) else 0.0
    wins = y.sum()
    rate = float(y[chosen].mean()) if len(chosen) else 0.0
    return {
        "top_k_win_rate": rate,
        "top_k_lift": rate / base if base > 0 else float("nan"),
        "top_k_share_of_wins": float(y[chosen].sum() / wins) if wins > 0 else float("nan"),
        "top_k_rows": int(len(chosen)),
    }


def scorer_metrics(y: np.ndarray, p: np.ndarray, week: np.ndarray, capacity: int) -> dict[str, float]:
    """Ranking, calibration and capacity metrics of one scorer on one set of rows."""
    y = np.asarray(y)
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "mean_predicted": float(p.mean()),
        **top_k(y, p, week, capacity),
    }


def lead_bootstrap(
    lead_ids: np.ndarray, n: int, seed: int
) -> list[np.ndarray]:
    """``n`` resamples of row indices, drawing whole leads with replacement."""
    codes, uniques = pd.factorize(pd.Series(lead_ids), sort=False)
    rows_of = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picked = rng.integers(0, len(uniques), len(uniques))
        lengths = counts[picked]
        offsets = np.repeat(starts[picked] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        out.append(rows_of[np.arange(lengths.sum()) + offsets])
    return out


def compare(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    week: np.ndarray,
    lead_ids: np.ndarray,
    capacity: int,
    *,
    reference: str = "model",
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Every scorer's metrics on the same rows with bootstrap intervals, and the reference
    scorer's difference to each other scorer (reference minus other) with its interval.

    A resample with only one class is skipped (and counted): AUC is undefined there.
    """
    y = np.asarray(y)
    week = np.asarray(week)
    result: dict = {"rows": int(len(y)), "positives": int(y.sum()), "leads": int(pd.Series(lead_ids).nunique()),
                    "weeks": int(len(np.unique(week))), "capacity_per_week": int(capacity), "scorers": {}}
    point = {name: scorer_metrics(y, p, week, capacity) for name, p in scores.items()}
    draws: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METRICS} for name in scores}
    skipped = 0
    samples = lead_bootstrap(lead_ids, n_boot, seed) if n_boot else []
    for i, idx in enumerate(samples):
        yb = y[idx]
        if yb.min() == yb.max():
            skipped += 1
            continue
        for name, p in scores.items():
            m = scorer_metrics(yb, np.asarray(p)[idx], week[idx], capacity)
            for key in METRICS:
                draws[name][key].append(m[key])
        if progress is not None:
            progress(i + 1, len(samples))
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2

    def interval(values: list[float]) -> list[float] | None:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        return [float(np.quantile(v, lo)), float(np.quantile(v, hi))] if len(v) else None

    for name in scores:
        result["scorers"][name] = {
            **point[name],
            "interval": {key: interval(draws[name][key]) for key in METRICS},
        }
    if reference in scores:
        result["difference"] = {}
        for other in scores:
            if other == reference:
                continue
            diff = {}
            for key in METRICS:
                d = np.asarray(draws[reference][key]) - np.asarray(draws[other][key])
                diff[key] = {"value": point[reference][key] - point[other][key], "interval": interval(list(d))}
            result["difference"][other] = diff
    result["bootstrap"] = {"resamples": len(samples) - skipped, "skipped_one_class": skipped, "level": level,
                           "unit": "lead"}
    return result


def verdict(diff: dict, reference: str, other: str, metric: str = "roc_auc") -> str:
    """One sentence: does the reference beat the other scorer on ``metric``, judged by the interval?"""
    d = diff[metric]
    value, iv = d["value"], d["interval"]
    better = -value if metric in LOWER_IS_BETTER else value
    span = f"{value:+.3f} {metric.replace('_', ' ')}"
    if iv is None:
        return f"{reference} vs {other}: {span} (no interval)"
    lo, hi = iv
    ci = f"95 % interval {lo:+.3f} to {hi:+.3f}"
    clear = (lo > 0 or hi < 0) and (better > 0)
    worse = (lo > 0 or hi < 0) and (better < 0)
    if clear:
        return f"{reference} beats {other}: {span} ({ci})"
    if worse:
        return f"{reference} does not beat {other}: it is worse by {abs(value):.3f} {metric.replace('_', ' ')} ({ci})"
    return f"{reference} does not clearly beat {other}: {span}, the {ci} includes 0"
