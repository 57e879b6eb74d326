"""Population stability: has the population moved away from what the champion learned from?

For every model feature (and the score, when given) the population stability index compares the
shares of a *reference* sample (the champion's training snapshots) with those of a *recent* one
(e.g. the leads scored last month), over bins fixed by the reference:

    PSI = Σ_bins (a_i − e_i) · ln(a_i / e_i)

with ``e`` the expected (reference) shares and ``a`` the actual (recent) shares. Each term is
≥ 0 (the difference and the log have the same sign), so PSI ≥ 0, and 0 only for identical shares.
It is not symmetric in general once the floor below applies.

Bins, learned from the reference only (:func:`fit_bins`):

- numeric: the reference's deciles. The interior cut points are the quantiles at 10 %, …, 90 % of
  the reference's non-missing values, taken as reference values (numpy ``method="lower"``, so a
  count gets whole-number cut points), duplicates dropped (a count that is 0 for most rows gets
  fewer, wider bins); the outer edges are −inf and +inf. Bins are closed on the right:
  ``(−inf, c1], (c1, c2], …, (c_k, +inf)``. Missing values (NaN/None) have a bin of their own,
  always the last one. The values 1 … 100 get cut points 10, 20, …, 90: ten bins of 10 %.
- category: one bin per level seen in the reference (sorted), then ``(other)`` for every level the
  reference never had, then ``(missing)``.

Empty bins: a share of 0 would make ln(a/e) infinite. :func:`floor_shares` therefore divides each
share vector by its sum, raises every share below ``floor`` (default 1e-4) to ``floor`` and divides
by the new sum again; :func:`psi` applies that to both vectors. A bin that is empty on both sides
adds nothing.

Reading (thresholds are parameters): PSI < ``warn`` (0.1) "stable", ``warn`` ≤ PSI < ``alert``
(0.25) "shift" (moderate), PSI ≥ ``alert`` "major".

Caveats worth knowing when reading the table:

- PSI grows with sampling noise alone, roughly (bins − 1) · (1/n_reference + 1/n_recent) for two
  independent samples of one population; a 40-level category compared on 300 recent rows reads
  ~0.13 without any real change. Training snapshots repeat each lead every few days, so for fit
  features (fixed per lead) the effective n is the number of leads, not of rows. Check the sample
  sizes before acting on a small "shift".
- Some features move by construction when the recent sample is not drawn like the training
  snapshots (e.g. ``lead_age_days`` of all open leads on one day vs. snapshots of leads at most
  ``max_snapshot_age_days`` old); compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["numeric", "category"]
Status = Literal["stable", "shift", "major"]

FLOOR = 1e-4
WARN = 0.1
ALERT = 0.25
N_BINS = 10
MISSING = "(missing)"
OTHER = "(other)"
SCORE = "score"
COLUMNS = ("feature", "group", "kind", "psi", "status", "n_reference", "n_recent", "top_move")
STATUS_COLOURS = {"stable": "#2ca02c", "shift": "#ff7f0e", "major": "#d62728"}
MAX_BARS = 40  # the plot shows the features with the highest PSI; the CSV has every one


@dataclass
class Bins:
    """The reference binning of one feature.

    ``kind="numeric"``: ``edges`` are the interior cut points c_1 < … < c_k; bin 0 holds values
    ≤ c_1, bin j holds ``(c_j, c_{j+1}]``, bin k holds values > c_k and bin k + 1 missing ones.
    ``kind="category"``: one bin per entry of ``levels``, then "(other)" (any level not listed),
    then "(missing)".
    """

    kind: Kind
    edges: list[float] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """A short text per bin, in bin order (numeric bins read ``a–b`` for ``(a, b]``)."""
        if self.kind == "category":
            return [*self.levels, OTHER, MISSING]
        if not self.edges:
            return ["any value", MISSING]
        cuts = [_number(c) for c in self.edges]
        inner = [f"{lo}–{hi}" for lo, hi in zip(cuts[:-1], cuts[1:])]
        return [f"≤ {cuts[0]}", *inner, f"> {cuts[-1]}", MISSING]

    @property
    def size(self) -> int:
        return len(self.levels) + 2 if self.kind == "category" else len(self.edges) + 2

    def index(self, values: pd.Series) -> np.ndarray:
        """The bin of every value (int64, 0 … size − 1)."""
        if self.kind == "category":
            missing = values.isna().to_numpy()
            lookup = {level: i for i, level in enumerate(self.levels)}
            other = len(self.levels)
            idx = np.array([lookup.get(str(v), other) for v in values.tolist()], dtype=np.int64)
            idx[missing] = other + 1
            return idx
        x = _as_float(values)
        idx = np.searchsorted(np.asarray(self.edges, dtype="float64"), x, side="left").astype(np.int64)
        idx[np.isnan(x)] = len(self.edges) + 1
        return idx


def _number(x: float) -> str:
    return f"{x:.4g}"


def _as_float(values: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(pd.Series(values)).to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"drift: a numeric feature ({values.name!r}) holds non-numeric values: {exc}") from None


def fit_bins(reference: pd.Series, kind: str, n_bins: int = N_BINS) -> Bins:
    """The bins of one feature, learned from its reference values (see the module docstring)."""
    if kind == "category":
        present = reference.dropna()
        return Bins("category", levels=sorted({str(v) for v in present.tolist()}))
    if kind != "numeric":
        raise ValueError(f"drift: kind must be 'numeric' or 'category', found {kind!r} for {reference.name!r}")
    if n_bins < 2:
        raise ValueError(f"drift: n_bins must be at least 2, found {n_bins}")
    x = _as_float(reference)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Bins("numeric")
    cuts = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins, method="lower"))
    return Bins("numeric", edges=[float(c) for c in cuts])


def shares(values: pd.Series, bins: Bins) -> np.ndarray:
    """The share of ``values`` in each bin (sums to 1; missing values count in their bin)."""
    if len(values) == 0:
        raise ValueError(f"drift: no values of {values.name!r} to compute shares of")
    return np.bincount(bins.index(values), minlength=bins.size) / len(values)


def floor_shares(s: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """``s`` divided by its sum, every share below ``floor`` raised to it, divided by the new sum."""
    s = np.asarray(s, dtype="float64")
    if s.ndim != 1 or s.size == 0 or (s < 0).any() or not np.isfinite(s).all() or s.sum() <= 0:
        raise ValueError(f"drift: shares must be finite, non-negative and not all zero; found {s}")
    s = np.maximum(s / s.sum(), floor)
    return s / s.sum()


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = FLOOR) -> float:
    """Population stability index of ``actual`` shares against ``expected`` ones, both floored."""
    expected, actual = np.asarray(expected, dtype="float64"), np.asarray(actual, dtype="float64")
    if expected.shape != actual.shape:
        raise ValueError(f"drift: expected and actual shares differ in length ({expected.size} vs {actual.size})")
    if not 0 < floor < 1:
        raise ValueError(f"drift: floor must be in (0, 1), found {floor}")
    e, a = floor_shares(expected, floor), floor_shares(actual, floor)
    return float(np.sum((a - e) * np.log(a / e)))


def status_of(value: float, warn: float = WARN, alert: float = ALERT) -> Status:
    """The reading of a PSI: "stable" below ``warn``, "shift" below ``alert``, "major" from ``alert`` on."""
    return "stable" if value < warn else "shift" if value < alert else "major"


def _percent(x: float) -> str:
    return f"{x:.0%}" if x == 0 or x >= 0.1 else f"{x:.1%}"


def _top_move(name: str, bins: Bins, e: np.ndarray, a: np.ndarray) -> str:
    j = int(np.argmax(np.abs(a - e)))
    return f"{name} {bins.labels[j]}: {_percent(e[j])} → {_percent(a[j])}"


def _row(name: str, group: str, kind: str, ref: pd.Series, new: pd.Series, n_bins: int, warn: float, alert: float) -> dict:
    bins = fit_bins(ref, kind, n_bins)
    e, a = shares(ref, bins), shares(new, bins)
    value = psi(e, a)
    return {"feature": name, "group": group, "kind": kind, "psi": value, "status": status_of(value, warn, alert),
            "n_reference": len(ref), "n_recent": len(new), "top_move": _top_move(name, bins, e, a)}


def drift_table(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    spec,
    *,
    score_reference: np.ndarray | None = None,
    score_recent: np.ndarray | None = None,
    warn: float = WARN,
    alert: float = ALERT,
    n_bins: int = N_BINS,
) -> pd.DataFrame:
    """PSI of every feature of ``spec`` (and of the score, if both score arrays are given), recent
    raw features against reference raw features (``features.build.compute_features`` tables).

    One row per feature, highest PSI first: feature, group (fit/interest/score), kind, psi,
    status, n_reference, n_recent, top_move (the bin whose share moved most). ``warn`` and
    ``alert`` are kept in ``table.attrs`` for :func:`write_drift`.
    """
    if not 0 < warn < alert:
        raise ValueError(f"drift: thresholds must satisfy 0 < warn < alert, found warn={warn}, alert={alert}")
    names = [f.name for f in spec.features]
    for label, frame in (("reference", reference), ("recent", recent)):
        absent = [n for n in names if n not in frame.columns]
        if absent:
            raise ValueError(f"drift: the {label} table lacks {len(absent)} model feature(s): {', '.join(absent)}")
        if frame.empty:
            raise ValueError(f"drift: the {label} table has no rows")
    if (score_reference is None) != (score_recent is None):
        raise ValueError("drift: give both score_reference and score_recent, or neither")
    rows = [_row(f.name, f.group, f.kind, reference[f.name], recent[f.name], n_bins, warn, alert) for f in spec.features]
    if score_reference is not None:
        ref, new = (pd.Series(np.asarray(s, dtype="float64").ravel(), name=SCORE) for s in (score_reference, score_recent))
        for label, s in (("score_reference", ref), ("score_recent", new)):
            if s.empty:
                raise ValueError(f"drift: {label} is empty")
        rows.append(_row(SCORE, SCORE, "numeric", ref, new, n_bins, warn, alert))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table = table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
    table.attrs.update(warn=warn, alert=alert)
    return table


def summarize(table: pd.DataFrame) -> dict:
    """Features with status "major" (alerts) and "shift" (warnings), highest PSI first; the
    largest PSI; the number of features (the score row not counted) and the score's PSI if any."""
    ordered = table.sort_values("psi", ascending=False, kind="stable")
    score = ordered.loc[ordered["group"] == SCORE, "psi"]
    return {
        "alerts": ordered.loc[ordered["status"] == "major", "feature"].tolist(),
        "warnings": ordered.loc[ordered["status"] == "shift", "feature"].tolist(),
        "max_psi": float(ordered["psi"].max()) if len(ordered) else 0.0,
        "features": int((ordered["group"] != SCORE).sum()),
        "score_psi": float(score.iloc[0]) if len(score) else None,
    }


def write_drift(table: pd.DataFrame, out_dir: Path | str, *, warn: float | None = None, alert: float | None = None,
                notes: Sequence[str] = (), meta: dict | None = None) -> dict:
    """Write ``drift.csv`` (the table), ``drift.png`` (PSI per feature as horizontal bars, coloured by
    status, with the thresholds as lines) and ``drift.html`` (both on one page, with ``notes`` as
    further summary sentences) into ``out_dir``; returns :func:`summarize`.

    Thresholds for the lines: the given ones, else those :func:`drift_table` recorded, else the defaults.
    """
    from leadscore.training import report_html

    warn = float(warn if warn is not None else table.attrs.get("warn", WARN))
    alert = float(alert if alert is not None else table.attrs.get("alert", ALERT))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "drift.csv", index=False)
    _drift_png(table, warn, alert, out / "drift.png")
    summary = summarize(table)
    score = f"; score PSI {summary['score_psi']:.3f}" if summary["score_psi"] is not None else ""
    sentences = [f"{len(summary['alerts'])} of {summary['features']} features moved a lot (PSI ≥ {alert:g}), "
                 f"{len(summary['warnings'])} moved some (PSI ≥ {warn:g}){score}.", *notes]
    columns = [("feature", "feature", ""), ("group", "group", ""), ("kind", "kind", ""), ("status", "status", ""),
               ("psi", "PSI", "f3"), ("top_move", "largest move of a bin's share", ""),
               ("n_reference", "reference rows", ""), ("n_recent", "recent rows", "")]
    body = ("<h2>Population stability per feature</h2>"
            + report_html.table(table, columns, "drift-table", lambda row: row["status"] if row["status"] != "stable" else "")
            + '<p class="note">PSI = Σ (recent share − reference share) · ln(recent share / reference share) over the '
              "reference's bins: deciles for numbers, levels for categories, missing values on their own.</p>"
            + '<h2>Plot</h2><div class="plots">' + report_html.image(out / "drift.png", "PSI per feature", wide=True)
            + "</div>")
    (out / "drift.html").write_text(report_html.page("Has the population moved?", meta or {}, sentences, body))
    return summary


def _drift_png(table: pd.DataFrame, warn: float, alert: float, path: Path) -> Path:
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullLocator

    from leadscore.training.plots import _figure, _save

    ordered = table.sort_values("psi", ascending=False, kind="stable")
    top = ordered.head(MAX_BARS).iloc[::-1]
    fig, axes = _figure(figsize=(7.5, 0.24 * len(top) + 1.8))
    ax = axes[0, 0]
    ax.barh(top["feature"], top["psi"], color=[STATUS_COLOURS.get(s, "#7f7f7f") for s in top["status"]])
    ax.axvline(warn, color=STATUS_COLOURS["shift"], ls="--", lw=1)
    ax.axvline(alert, color=STATUS_COLOURS["major"], ls="--", lw=1)
    top_psi = float(top["psi"].max()) if len(top) else 0.0
    if top_psi > 4 * alert:
        # One runaway feature would squash the threshold lines: linear up to the alert, log beyond.
        ax.set_xscale("symlog", linthresh=alert, linscale=2.0)
        ticks = [0.0, warn, alert, *(v for v in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0) if 2 * alert < v <= top_psi * 1.5)]
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0, max(alert * 1.2, top_psi * (1.4 if top_psi > 4 * alert else 1.15)))  # room for the labels
    for y, value in enumerate(top["psi"]):
        ax.annotate(f"{value:.3g}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=6)
    ax.set(xlabel="population stability index (recent vs training)", ylabel="")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(handles=[Patch(color=c, label=s) for s, c in STATUS_COLOURS.items()], loc="lower right", fontsize=8,
              title=f"warn {warn:g} · alert {alert:g}", title_fontsize=8)
    shown = f"top {len(top)} of {len(ordered)}" if len(ordered) > len(top) else f"{len(ordered)} rows"
    ax.set_title(f"Population stability ({shown})", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
