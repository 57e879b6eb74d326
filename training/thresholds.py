"""The SQL threshold and grades A–D from sales capacity: the SLA negotiation, in numbers.

Sales can follow up ``thresholds.capacity_per_week`` leads a week. On scored weekly snapshots,
a threshold table says for each probability cut-off how many leads a week land above it, their
expected win rate (the mean calibrated probability: no labels needed), the wins to expect per
week, and the share of all expected wins that sales would see; where labels are known the
observed win rate and share stand beside them.

The SQL threshold (``sales_ready``) is where the weekly volume meets the capacity — or, with
``thresholds.target_precision``, the lowest cut-off whose expected win rate reaches it. The
grades follow: **A** the best ``grade_a_share`` of the capacity (call first), **B** down to the
SQL threshold, **C** down to ``grade_c_multiple`` × capacity (nurture), **D** below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.config.params import ThresholdParams

# Cut-offs always shown in a table beside those derived from the capacity.
STANDARD_CUTOFFS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)
# Capacity multiples whose cut-offs are shown.
CAPACITY_MULTIPLES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def cutoff_for_volume(p: np.ndarray, n_weeks: int, per_week: float) -> float:
    """The lowest probability cut-off with at most ``per_week`` leads a week at or above it."""
    ranked = np.sort(np.asarray(p, dtype=float))[::-1]
    m = int(np.floor(per_week * n_weeks))
    if m <= 0:
        return float(np.nextafter(ranked[0], 1.0))
    if m >= len(ranked):
        return float(ranked[-1])
    # The m-th best, unless the (m+1)-th ties with it: then just above the tie.
    t = ranked[m - 1]
    return float(t if ranked[m] < t else np.nextafter(t, 1.0))


def cutoff_for_precision(p: np.ndarray, target: float) -> float | None:
    """The lowest cut-off whose rows have a mean probability (expected win rate) ≥ ``target``."""
    ranked = np.sort(np.asarray(p, dtype=float))[::-1]
    mean_above = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    ok = np.flatnonzero(mean_above >= target)
    return float(ranked[ok[-1]]) if len(ok) else None


def threshold_table(
    p: np.ndarray, week: np.ndarray, y: np.ndarray | None = None, cutoffs: list[float] | None = None,
    capacity: int | None = None, extra: tuple[float, ...] = (),
) -> pd.DataFrame:
    """One row per cut-off: leads per week at or above it, expected (and observed) win rate,
    expected wins per week, and the share of all (expected and observed) wins captured."""
    p = np.asarray(p, dtype=float)
    n_weeks = max(1, len(np.unique(week)))
    if cutoffs is None:
        derived = [cutoff_for_volume(p, n_weeks, capacity * m) for m in CAPACITY_MULTIPLES] if capacity else []
        cutoffs = sorted({round(c, 4) for c in (*STANDARD_CUTOFFS, *derived, *extra) if c <= p.max()}, reverse=True)
    total_expected = p.sum()
    rows = []
    for t in cutoffs:
        above = p >= t
        n = int(above.sum())
        row = {
            "threshold": float(t),
            "leads_per_week": n / n_weeks,
            "expected_win_rate": float(p[above].mean()) if n else float("nan"),
            "expected_wins_per_week": float(p[above].sum()) / n_weeks,
            "expected_share_of_wins": float(p[above].sum() / total_expected) if total_expected > 0 else float("nan"),
        }
        if y is not None:
            y = np.asarray(y)
            row["observed_win_rate"] = float(y[above].mean()) if n else float("nan")
            row["observed_share_of_wins"] = float(y[above].sum() / y.sum()) if y.sum() > 0 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def choose_thresholds(p: np.ndarray, week: np.ndarray, cfg: ThresholdParams) -> dict:
    """The SQL threshold and the grade cut-offs (``a`` > ``b`` = sales_ready > ``c``) from the
    capacity or the target precision, with how they were chosen and the weekly volume behind them."""
    p = np.asarray(p, dtype=float)
    n_weeks = max(1, len(np.unique(week)))
    how = f"capacity of {cfg.capacity_per_week} leads a week"
    sql = cutoff_for_volume(p, n_weeks, cfg.capacity_per_week)
    if cfg.target_precision is not None:
        chosen = cutoff_for_precision(p, cfg.target_precision)
        if chosen is None:
            how += f" (no cut-off reaches the target precision {cfg.target_precision:.0%}; best {p.max():.1%})"
        else:
            sql, how = chosen, f"target precision {cfg.target_precision:.0%}"
    a = max(cutoff_for_volume(p, n_weeks, cfg.capacity_per_week * cfg.grade_a_share), np.nextafter(sql, 1.0))
    c = min(cutoff_for_volume(p, n_weeks, cfg.capacity_per_week * cfg.grade_c_multiple), np.nextafter(sql, 0.0))
    return {
        "a": float(a), "b": float(sql), "c": float(c), "sales_ready": float(sql),
        "chosen_by": how,
        "weeks": n_weeks,
        "leads_per_week": float(len(p) / n_weeks),
        "sales_ready_leads_per_week": float((p >= sql).sum() / n_weeks),
    }
