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

Cut-offs are the calibrated probabilities they came from, compared with the tie rule of
``models.decision`` (within 1e-9 counts as at): leads tied with the last one let in are all in
or all out, and the three cut-offs are always more than a tie apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.config.params import ThresholdParams
from leadscore.models.decision import at_or_above, tie_width

# Cut-offs always shown in a table beside those derived from the capacity.
STANDARD_CUTOFFS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)
# Capacity multiples whose cut-offs are shown.
CAPACITY_MULTIPLES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def above(value: float) -> float:
    """A cut-off that ``value`` (and its ties) are clearly below under the tie rule."""
    return float(value) + 2 * tie_width(value)


def below(value: float) -> float:
    """A cut-off clearly below ``value`` under the tie rule (``value`` is at or above it, its ties too)."""
    return float(value) - 2 * tie_width(value)


def count_at_or_above(p: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """How many of ``p`` are at or above each cut-off under the tie rule (``models.decision``)."""
    asc = np.sort(np.asarray(p, dtype=float))
    cutoffs = np.asarray(cutoffs, dtype=float)
    return len(asc) - np.searchsorted(asc, cutoffs - tie_width(cutoffs), side="left")


def cutoff_for_volume(p: np.ndarray, n_weeks: int, per_week: float) -> float:
    """The lowest cut-off with at most ``per_week`` leads a week at or above it under the tie rule.

    The cut-off is the probability of the last lead it lets in (the value it came from); leads
    tied with that one (within the tie width) are all in or all out, never split."""
    asc = np.sort(np.asarray(p, dtype=float))
    m = int(np.floor(per_week * n_weeks))
    ok = np.flatnonzero(count_at_or_above(asc, asc) <= m)
    if not len(ok):
        return above(asc[-1])
    return float(asc[ok[0]])


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
        above = at_or_above(p, t)
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
    # A, B and C never share a tie: a lead 1 ulp off a cut-off keeps its grade, and grade B is
    # never squeezed empty between two cut-offs that the tie rule treats as one.
    a = max(cutoff_for_volume(p, n_weeks, cfg.capacity_per_week * cfg.grade_a_share), above(sql))
    c = min(cutoff_for_volume(p, n_weeks, cfg.capacity_per_week * cfg.grade_c_multiple), below(sql))
    return {
        "a": float(a), "b": float(sql), "c": float(c), "sales_ready": float(sql),
        "chosen_by": how,
        "weeks": n_weeks,
        "leads_per_week": float(len(p) / n_weeks),
        "sales_ready_leads_per_week": float(at_or_above(p, sql).sum() / n_weeks),
    }
