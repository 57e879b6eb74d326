"""Evaluation plots of a training run: several scorers side by side on the same rows.

Each plot is written twice into one folder, under a fixed stem that ``dvc.yaml`` can name:
a tidy CSV (one row per point, a ``scorer`` column first, for DVC plots) and a PNG beside it.

- ``roc.csv`` (scorer, fpr, tpr) and ``roc.png``: ROC curves, AUC in the legend.
- ``pr.csv`` (scorer, recall, precision) and ``pr.png``: precision–recall curves, average
  precision in the legend, the base rate as a dashed line.
- ``reliability.csv`` (scorer, bin, mean_predicted, observed_rate, count) and ``reliability.png``:
  equal-count bins from :func:`models.calibration.reliability_table`, ECE in the legend.
- ``gains.csv`` (scorer, share_of_leads, share_of_wins) and ``gains.png``: cumulative gains (leads
  worked in score order, highest first), with the random and the perfect curve for reference.
- ``win_rate_by_grade.csv`` (scorer, grade, rows, wins, win_rate) and ``win_rate_by_grade.png``:
  win rate per grade A–D, one bar colour per scorer. Only when grades are given.
- ``score_distribution.csv`` (scorer, outcome, bin_low, bin_high, share) and
  ``score_distribution.png``: histograms of the probability for won and not-won rows (shares of
  each outcome, 20 bins on [0, max p]), one panel per scorer.
- ``shap_importance.csv`` (feature, mean_abs_shap, group) and ``shap_importance.png``: mean |SHAP|
  per feature, top 20 as horizontal bars coloured by group. Only when importance is given.

Curves are thinned to at most :data:`MAX_POINTS` points per scorer (first and last kept), so the
CSVs stay small enough to keep in Git. The PNGs use matplotlib's Agg canvas directly (no pyplot),
so writing them never changes the backend or the figures of the calling process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from leadscore.models.calibration import expected_calibration_error, reliability_table

MAX_POINTS = 200
HIST_BINS = 20
TOP_FEATURES = 20
DPI = 110
GRADES = ("A", "B", "C", "D")
GROUP_COLOURS = {"fit": "#1f77b4", "interest": "#ff7f0e"}
OTHER_GROUP_COLOUR = "#7f7f7f"
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


# ---------------------------------------------------------------------------------------------
# Tables (what goes into the CSVs)
# ---------------------------------------------------------------------------------------------


def thin_index(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most ``max_points`` evenly spread indices into ``n`` points, always the first and last."""
    if n <= 0:
        return np.array([], dtype=int)
    return np.unique(np.linspace(0, n - 1, min(n, max_points)).astype(int))


def roc_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """ROC points per scorer (thinned), from (0, 0) to (1, 1)."""
    parts = []
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        keep = thin_index(len(fpr))
        parts.append(pd.DataFrame({"scorer": name, "fpr": fpr[keep], "tpr": tpr[keep]}))
    return pd.concat(parts, ignore_index=True)


def pr_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Precision–recall points per scorer (thinned), recall ascending from 0 to 1."""
    parts = []
    for name, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        precision, recall = precision[::-1], recall[::-1]
        keep = thin_index(len(recall))
        parts.append(pd.DataFrame({"scorer": name, "recall": recall[keep], "precision": precision[keep]}))
    return pd.concat(parts, ignore_index=True)


def reliability_frame(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """The equal-count reliability bins of every scorer, numbered from 1 by rising probability."""
    rows = []
    for name, p in scores.items():
        for i, row in enumerate(reliability_table(y, p), start=1):
            rows.append({
                "scorer": name,
                "bin": i,
                "mean_predicted": row["mean_predicted"],
                "observed_rate": row["observed_rate"],
                "count": row["rows"],
            })
    return pd.DataFrame(rows, columns=["scorer", "bin", "mean_predicted", "observed_rate", "count"])


def gains_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of leads worked (highest score first, ties in row order) against share of wins found,
    from (0, 0) to (1, 1), one point per row."""
    y = np.asarray(y, dtype="float64")
    order = np.argsort(-np.asarray(p, dtype="float64"), kind="stable")
    wins = np.concatenate([[0.0], np.cumsum(y[order])])
    leads = np.arange(len(y) + 1, dtype="float64")
    return leads / len(y), wins / y.sum()


def gains_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cumulative gains per scorer (thinned)."""
    parts = []
    for name, p in scores.items():
        share_leads, share_wins = gains_curve(y, p)
        keep = thin_index(len(share_leads))
        parts.append(pd.DataFrame({"scorer": name, "share_of_leads": share_leads[keep], "share_of_wins": share_wins[keep]}))
    return pd.concat(parts, ignore_index=True)


def _grade_order(grades: dict[str, np.ndarray]) -> list[str]:
    """A–D first, then any other grade seen (sorted), so every scorer has the same rows."""
    seen = {str(g) for values in grades.values() for g in np.asarray(values)}
    return list(GRADES) + sorted(seen - set(GRADES))


def win_rate_by_grade_table(y: np.ndarray, grades: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows, wins and win rate per grade and scorer; a grade nobody got has 0 rows and no rate."""
    y = np.asarray(y, dtype="int64")
    order = _grade_order(grades)
    rows = []
    for name, values in grades.items():
        values = np.asarray(values).astype(str)
        for grade in order:
            mask = values == grade
            n, won = int(mask.sum()), int(y[mask].sum())
            rows.append({"scorer": name, "grade": grade, "rows": n, "wins": won, "win_rate": won / n if n else np.nan})
    return pd.DataFrame(rows, columns=["scorer", "grade", "rows", "wins", "win_rate"])


def score_distribution_table(y: np.ndarray, scores: dict[str, np.ndarray], bins: int = HIST_BINS) -> pd.DataFrame:
    """Per scorer and outcome, the share of rows in each of ``bins`` equal bins on [0, max p]."""
    y = np.asarray(y, dtype="int64")
    parts = []
    for name, p in scores.items():
        p = np.asarray(p, dtype="float64")
        top = float(p.max()) if p.size and p.max() > 0 else 1.0
        edges = np.linspace(0.0, top, bins + 1)
        for outcome, mask in (("won", y == 1), ("not won", y == 0)):
            if not mask.any():
                continue
            counts, _ = np.histogram(p[mask], bins=edges)
            parts.append(pd.DataFrame({
                "scorer": name,
                "outcome": outcome,
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "share": counts / mask.sum(),
            }))
    return pd.concat(parts, ignore_index=True)


def shap_importance(contrib: np.ndarray, names: list[str], groups: dict[str, str]) -> pd.DataFrame:
    """mean |SHAP| per feature from a (rows × features) contribution matrix (without the bias column), sorted descending."""
    contrib = np.asarray(contrib, dtype="float64")
    if contrib.ndim != 2 or contrib.shape[1] != len(names):
        raise ValueError(
            f"contributions have shape {contrib.shape} but there are {len(names)} feature names; "
            "pass the matrix without the bias column"
        )
    table = pd.DataFrame({
        "feature": list(names),
        "mean_abs_shap": np.abs(contrib).mean(axis=0) if len(contrib) else np.zeros(len(names)),
        "group": [groups.get(n, "other") for n in names],
    })
    return table.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Figures (what goes into the PNGs)
# ---------------------------------------------------------------------------------------------


def _figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.0, 5.0), **kwargs: Any):
    """A figure on matplotlib's Agg canvas and its axes, without touching pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _title(text: str, title: str) -> str:
    return f"{text}\n{title}" if title else text


def _colours(names: list[str]) -> dict[str, Any]:
    """One colour per scorer, the same in every plot of the run."""
    from matplotlib import colormaps

    cycle = colormaps["tab10"].colors
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def _roc_png(table: pd.DataFrame, aucs: dict[str, float], colours: dict, title: str, path: Path) -> Path:
    fig, axes = _figure(figsize=(6.0, 5.5))
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="random (AUC 0.5)")
    for name, part in table.groupby("scorer", sort=False):
        ax.plot(part["fpr"], part["tpr"], color=colours[name], lw=1.8, label=f"{name} (AUC {aucs[name]:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (share of not-won leads flagged)",
           ylabel="true positive rate (share of wins flagged)")
    ax.set_title(_title("ROC curve", title), fontsize=11)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _pr_png(table: pd.DataFrame, aps: dict[str, float], base_rate: float, colours: dict, title: str, path: Path) -> Path:
    fig, axes = _figure(figsize=(6.0, 5.5))
    ax = axes[0, 0]
    ax.axhline(base_rate, color="grey", lw=1, ls="--", label=f"base rate ({base_rate:.1%})")
    for name, part in table.groupby("scorer", sort=False):
        ax.plot(part["recall"], part["precision"], color=colours[name], lw=1.8, label=f"{name} (AP {aps[name]:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (share of wins found)", ylabel="precision (win rate of flagged leads)")
    ax.set_title(_title("Precision–recall curve", title), fontsize=11)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _reliability_png(table: pd.DataFrame, eces: dict[str, float], colours: dict, title: str, path: Path) -> Path:
    fig, axes = _figure(figsize=(6.0, 5.5))
    ax = axes[0, 0]
    top = max(table["mean_predicted"].max(), table["observed_rate"].max()) * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for i, (name, part) in enumerate(table.groupby("scorer", sort=False)):
        ax.plot(part["mean_predicted"], part["observed_rate"], marker=MARKERS[i % len(MARKERS)], color=colours[name],
                label=f"{name} (ECE {eces[name]:.4f})")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted probability (equal-count bins)", ylabel="observed win rate")
    ax.set_title(_title("Reliability", title), fontsize=11)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _gains_png(table: pd.DataFrame, base_rate: float, colours: dict, title: str, path: Path) -> Path:
    fig, axes = _figure(figsize=(6.0, 5.5))
    ax = axes[0, 0]
    ax.plot([0, base_rate, 1], [0, 1, 1], color="black", lw=1, ls=":", label="perfect")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="random")
    for name, part in table.groupby("scorer", sort=False):
        ax.plot(part["share_of_leads"], part["share_of_wins"], color=colours[name], lw=1.8, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="share of leads worked (highest score first)", ylabel="share of wins found")
    ax.set_title(_title("Cumulative gains", title), fontsize=11)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _win_rate_png(table: pd.DataFrame, base_rate: float, colours: dict, title: str, path: Path) -> Path:
    fig, axes = _figure(figsize=(7.0, 5.0))
    ax = axes[0, 0]
    grades = list(dict.fromkeys(table["grade"]))
    scorers = list(dict.fromkeys(table["scorer"]))
    width = 0.8 / len(scorers)
    x = np.arange(len(grades))
    for i, name in enumerate(scorers):
        part = table[table["scorer"] == name].set_index("grade").reindex(grades)
        rates = part["win_rate"].fillna(0.0).to_numpy()
        bars = ax.bar(x - 0.4 + width * (i + 0.5), rates, width, color=colours.get(name), label=name)
        labels = [f"{r:.1%}" if n else "" for r, n in zip(rates, part["rows"].fillna(0).astype(int))]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
    ax.axhline(base_rate, color="grey", lw=1, ls="--", label=f"base rate ({base_rate:.1%})")
    ax.set_xticks(x, grades)
    ax.set(xlabel="grade", ylabel="win rate")
    highest = float(np.nan_to_num(table["win_rate"].max(skipna=True)))
    ax.set_ylim(0, max(highest, base_rate) * 1.25 or 1.0)
    ax.yaxis.set_major_formatter(_percent())
    ax.set_title(_title("Win rate by grade", title), fontsize=11)
    ax.legend(loc="upper right")
    return _save(fig, path)


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0)


def _distribution_png(table: pd.DataFrame, title: str, path: Path) -> Path:
    scorers = list(dict.fromkeys(table["scorer"]))
    fig, axes = _figure(len(scorers), 1, figsize=(6.5, 2.6 * len(scorers) + 0.6))
    outcome_colours = {"won": "#2ca02c", "not won": "#7f7f7f"}
    for ax, name in zip(axes[:, 0], scorers):
        part = table[table["scorer"] == name]
        for outcome, rows in part.groupby("outcome", sort=False):
            edges = np.append(rows["bin_low"].to_numpy(), rows["bin_high"].iloc[-1])
            ax.stairs(rows["share"].to_numpy(), edges, fill=True, alpha=0.45, color=outcome_colours.get(outcome),
                      label=f"{outcome} rows")
        ax.set_title(name, fontsize=10)
        ax.set(xlabel="predicted probability", ylabel="share of rows")
        ax.yaxis.set_major_formatter(_percent())
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(_title("Score distribution: won vs not won", title), fontsize=11)
    return _save(fig, path)


def _shap_png(table: pd.DataFrame, title: str, path: Path) -> Path:
    from matplotlib.patches import Patch

    top = table.head(TOP_FEATURES).iloc[::-1]
    fig, axes = _figure(figsize=(7.0, 0.3 * len(top) + 1.6))
    ax = axes[0, 0]
    colours = [GROUP_COLOURS.get(g, OTHER_GROUP_COLOUR) for g in top["group"]]
    ax.barh(top["feature"], top["mean_abs_shap"], color=colours)
    ax.set(xlabel="mean |SHAP| (log-odds)", ylabel="")
    ax.tick_params(axis="y", labelsize=8)
    seen = list(dict.fromkeys(table.head(TOP_FEATURES)["group"]))
    ax.legend(handles=[Patch(color=GROUP_COLOURS.get(g, OTHER_GROUP_COLOUR), label=g) for g in seen], loc="lower right")
    ax.set_title(_title(f"Feature importance (top {len(top)})", title), fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _check(y: np.ndarray, scores: dict[str, np.ndarray], grades: dict[str, np.ndarray] | None) -> np.ndarray:
    y = np.asarray(y).astype("int64")
    if not scores:
        raise ValueError("no scorers to plot")
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
        raise ValueError(f"plots need 0/1 labels with both classes; got {int((y == 1).sum())} won of {len(y)}")
    for kind, arrays in (("scores", scores), ("grades", grades or {})):
        for name, values in arrays.items():
            if len(values) != len(y):
                raise ValueError(f"{kind}[{name!r}] has {len(values)} values for {len(y)} rows")
    return y


def write_plots(
    out_dir: Path | str,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    grades: dict[str, np.ndarray] | None = None,
    importance: pd.DataFrame | None = None,
    title: str = "",
) -> dict[str, Path]:
    """Write every evaluation plot (CSV + PNG, same stem) into ``out_dir``; returns plot name -> PNG path."""
    y = _check(y, scores, grades)
    scores = {name: np.asarray(p, dtype="float64") for name, p in scores.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = _colours(list(dict.fromkeys([*scores, *(grades or {})])))
    base_rate = float(y.mean())
    written: dict[str, Path] = {}

    def emit(stem: str, table: pd.DataFrame, draw) -> None:
        table.to_csv(out / f"{stem}.csv", index=False)
        written[stem] = draw(table, out / f"{stem}.png")

    emit("roc", roc_table(y, scores),
         lambda t, p: _roc_png(t, {n: float(roc_auc_score(y, s)) for n, s in scores.items()}, colours, title, p))
    emit("pr", pr_table(y, scores),
         lambda t, p: _pr_png(t, {n: float(average_precision_score(y, s)) for n, s in scores.items()}, base_rate, colours, title, p))
    emit("reliability", reliability_frame(y, scores),
         lambda t, p: _reliability_png(t, {n: expected_calibration_error(y, s) for n, s in scores.items()}, colours, title, p))
    emit("gains", gains_table(y, scores), lambda t, p: _gains_png(t, base_rate, colours, title, p))
    if grades:
        emit("win_rate_by_grade", win_rate_by_grade_table(y, grades), lambda t, p: _win_rate_png(t, base_rate, colours, title, p))
    emit("score_distribution", score_distribution_table(y, scores), lambda t, p: _distribution_png(t, title, p))
    if importance is not None:
        table = importance[["feature", "mean_abs_shap", "group"]].sort_values("mean_abs_shap", ascending=False, kind="stable")
        emit("shap_importance", table.reset_index(drop=True), lambda t, p: _shap_png(t, title, p))
    return written


def backtest_table(report: dict) -> pd.DataFrame:
    """One row per (fold, scorer) of a backtest report: window start, ROC AUC and top-k win rate
    with their bootstrap intervals (``training.backtest.run_backtest``)."""
    rows = []
    for fold in report["folds"]:
        if "skipped" in fold:
            continue
        for name, m in fold["scorers"].items():
            auc_iv = m["interval"]["roc_auc"] or [np.nan, np.nan]
            top_iv = m["interval"]["top_k_win_rate"] or [np.nan, np.nan]
            rows.append({"fold": fold["fold"], "start": fold["start"][:10], "scorer": name,
                         "roc_auc": m["roc_auc"], "roc_auc_low": auc_iv[0], "roc_auc_high": auc_iv[1],
                         "top_k_win_rate": m["top_k_win_rate"], "top_k_low": top_iv[0], "top_k_high": top_iv[1]})
    return pd.DataFrame(rows)


def write_backtest_plot(out_dir: Path | str, report: dict) -> Path:
    """``backtest.csv`` and ``backtest.png``: per window, every scorer's ROC AUC and its win rate
    in the weekly top-k (k = sales capacity), with 95 % bootstrap intervals (drawn from their bounds,
    which need not contain the point)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = backtest_table(report)
    table.to_csv(out_dir / "backtest.csv", index=False)
    fig, grid = _figure(1, 2, figsize=(11.0, 4.5))
    axes = grid[0]
    names = list(dict.fromkeys(table["scorer"]))
    colours = _colours(names)
    starts = list(dict.fromkeys(table["start"]))
    width = 0.8 / max(1, len(names))
    for ax, (key, low, high, label) in zip(axes, (
        ("roc_auc", "roc_auc_low", "roc_auc_high", "ROC AUC"),
        ("top_k_win_rate", "top_k_low", "top_k_high", f"win rate of the top {report['capacity_per_week']} a week"),
    )):
        for j, name in enumerate(names):
            part = table[table["scorer"] == name].set_index("start").reindex(starts)
            x = np.arange(len(starts)) + (j - (len(names) - 1) / 2) * width
            # The interval is drawn from its own bounds, never as errors around the point: a percentile
            # bootstrap interval need not contain its point estimate (few wins per window, resampled
            # leads), and errors from it would be negative (matplotlib refuses them).
            ax.vlines(x, part[low], part[high], color=colours[name], linewidth=1.2)
            for bound in (low, high):
                ax.plot(x, part[bound], linestyle="none", marker="_", markersize=8, color=colours[name])
            ax.plot(x, part[key], linestyle="none", marker=MARKERS[j % len(MARKERS)], color=colours[name], label=name)
        ax.set_xticks(np.arange(len(starts)), [f"from {s}" for s in starts], rotation=20)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="lower right")
    axes[0].set_title("Rolling-origin backtest: ranking")
    axes[1].set_title("… and what sales would see")
    return _save(fig, out_dir / "backtest.png")
