"""Multi-touch attribution: which marketing touches get credit for a won deal.

Definitions
-----------
- A **won deal** is an opportunity with ``stage == "won"``. It is reported in the quarter of its
  ``closed_at`` (e.g. ``"2025Q3"``). If a lead has several won opportunities, each is attributed
  on its own, from the touches before *that* opportunity's creation.
- A **touch** of a won deal is an activity of the deal's lead that is a marketing activity (its
  ``activity_type`` is not one of the sales activity types, which are logged by sales and are not
  marketing touches) and that occurred strictly before the opportunity's ``created_at``: that is
  the hand-over to a deal, and what happens after it is sales' work. Touches at the same moment
  keep the order of the activity log. An activity without a channel counts under channel
  ``"(none)"``, one without a campaign under campaign ``"(none)"``.
- Each won deal distributes exactly **1 deal of credit** over its touches, and separately its
  ``amount`` as **revenue credit**. A deal without an amount gives revenue credit 0 and is counted
  in ``deals_without_amount``. A won deal without any touch is credited to the key
  ``"(no touch)"`` in every model: counted, never dropped.

Models (weights of a deal's n touches, sorted by time, always summing to 1)
---------------------------------------------------------------------------
- ``first_touch``: all credit to the first touch.
- ``last_touch``: all credit to the last touch before the hand-over.
- ``linear``: 1/n to every touch. The recommended view for long B2B journeys.
- ``time_decay``: a touch's weight halves every ``half_life_days`` before the conversion moment
  (weight ∝ 2^(−age/half-life), normalised per deal). The conversion moment is the opportunity's
  creation; as the weights are normalised per deal, measuring ages from the close date instead
  would give exactly the same credit.
- ``position_based`` (U-shaped): 40 % to the first touch, 40 % to the last, 20 % spread evenly
  over the touches in between; one touch gets 100 %, two touches 50 % each.

All of it is vectorised over the touches of all deals (one pass per model, no loop per activity).
"""

from __future__ import annotations

import html
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadscore.features.spec import sales_rows

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
KEYS = ("channel", "campaign")
NO_TOUCH = "(no touch)"
NONE = "(none)"
CREDIT_COLUMNS = ["quarter", "key", "model", "deals", "revenue"]
US_PER_DAY = 86_400 * 1_000_000
PLOT_QUARTERS = 4


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def _check_model(model: str, half_life_days: float) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, found {model!r}")
    if not (np.isfinite(half_life_days) and half_life_days > 0):
        raise ValueError(f"half_life_days must be a positive number of days, found {half_life_days!r}")


def _grouped_weights(deal: np.ndarray, times_us: np.ndarray, conversion_us: np.ndarray, model: str,
                     half_life_days: float) -> np.ndarray:
    """Weights of touches grouped by ``deal`` (each deal's touches contiguous and sorted by time);
    every deal's weights sum to 1."""
    _check_model(model, half_life_days)
    n = len(deal)
    if n == 0:
        return np.zeros(0, dtype="float64")
    starts = np.flatnonzero(np.r_[True, deal[1:] != deal[:-1]])
    sizes = np.diff(np.r_[starts, n])
    size = np.repeat(sizes, sizes)
    pos = np.arange(n) - np.repeat(starts, sizes)
    if model == "first_touch":
        return (pos == 0).astype("float64")
    if model == "last_touch":
        return (pos == size - 1).astype("float64")
    if model == "linear":
        return 1.0 / size
    if model == "position_based":
        ends = (pos == 0) | (pos == size - 1)
        middle = 0.2 / np.maximum(size - 2, 1)
        return np.select([size == 1, size == 2, ends], [1.0, 0.5, 0.4], default=middle)
    # time_decay: ages relative to each deal's latest touch, so the newest weighs 1 and a long
    # journey (or a short half-life) can never underflow to 0/0.
    age_days = (np.asarray(conversion_us, dtype="float64") - np.asarray(times_us, dtype="float64")) / US_PER_DAY
    youngest = np.repeat(np.minimum.reduceat(age_days, starts), sizes)
    raw = np.exp2(-(age_days - youngest) / half_life_days)
    return raw / np.repeat(np.add.reduceat(raw, starts), sizes)


def touch_weights(times_us: np.ndarray, conversion_us: int, model: str, half_life_days: float = 7.0) -> np.ndarray:
    """Credit weights of one deal's touches (times in microseconds, sorted ascending), summing to 1.

    ``conversion_us`` is the conversion moment (the opportunity's creation); it only matters for
    ``time_decay``. No touches give an empty array.
    """
    times = np.asarray(times_us, dtype="int64")
    if np.any(np.diff(times) < 0):
        raise ValueError("times_us must be sorted ascending (first touch first)")
    return _grouped_weights(np.zeros(len(times), dtype="int64"), times, np.full(len(times), conversion_us),
                            model, half_life_days)


# ---------------------------------------------------------------------------------------------
# Journeys and credit
# ---------------------------------------------------------------------------------------------


def _won_deals(export) -> pd.DataFrame:
    """One row per won opportunity: deal (0..n-1), lead_id, created_at, quarter, amount (NaN if none)."""
    opps = export.opportunities
    won = opps.loc[opps["stage"] == "won"].reset_index(drop=True)
    amount = won["amount"] if "amount" in won.columns else pd.Series(np.nan, index=won.index)
    return pd.DataFrame({
        "deal": np.arange(len(won)),
        "lead_id": won["lead_id"].to_numpy(),
        "created_at": won["created_at"].to_numpy(),
        "quarter": won["closed_at"].dt.to_period("Q").astype(str).to_numpy(),
        "amount": pd.to_numeric(amount, errors="coerce").astype("float64").to_numpy(),
    })


def _touches(export, deals: pd.DataFrame, sales_activity_types: Collection[str]) -> pd.DataFrame:
    """Every (deal, touch) pair, sorted by deal then time (ties in log order), with both keys."""
    acts = export.activities
    sales = {str(t).lower() for t in sales_activity_types}
    marketing = acts.loc[~sales_rows(acts["activity_type"], sales)]
    cols = {"lead_id": marketing["lead_id"].to_numpy(), "occurred_at": marketing["occurred_at"].to_numpy(),
            "row": np.arange(len(marketing))}
    for key in KEYS:
        values = marketing[key] if key in marketing.columns else pd.Series(None, index=marketing.index, dtype="object")
        cols[key] = values.astype("object").where(values.notna(), NONE).to_numpy()
    pairs = deals[["deal", "lead_id", "created_at"]].merge(pd.DataFrame(cols), on="lead_id", how="inner")
    pairs = pairs.loc[pairs["occurred_at"] < pairs["created_at"]]
    order = np.lexsort((pairs["row"].to_numpy(), pairs["occurred_at"].to_numpy(), pairs["deal"].to_numpy()))
    return pairs.iloc[order].reset_index(drop=True)


def _journeys(export, sales_activity_types: Collection[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    deals = _won_deals(export)
    return deals, _touches(export, deals, sales_activity_types)


def _to_us(stamps: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(stamps, dtype="datetime64[us]").astype("int64")


def _credit(deals: pd.DataFrame, touches: pd.DataFrame, by: str, half_life_days: float) -> pd.DataFrame:
    if by not in KEYS:
        raise ValueError(f"by must be one of {', '.join(KEYS)}, found {by!r}")
    deal = touches["deal"].to_numpy()
    amount = np.nan_to_num(deals["amount"].to_numpy(), nan=0.0)[deal]
    quarter = deals["quarter"].to_numpy()[deal]
    times, conversion = _to_us(touches["occurred_at"]), _to_us(touches["created_at"])
    untouched = deals.loc[~deals["deal"].isin(touches["deal"])]
    no_touch = (untouched.assign(revenue=untouched["amount"].fillna(0.0))
                .groupby("quarter", as_index=False).agg(deals=("deal", "size"), revenue=("revenue", "sum")))
    parts = []
    for model in MODELS:
        w = _grouped_weights(deal, times, conversion, model, half_life_days)
        credit = pd.DataFrame({"quarter": quarter, "key": touches[by].to_numpy(), "deals": w, "revenue": w * amount})
        summed = credit.groupby(["quarter", "key"], as_index=False, sort=False)[["deals", "revenue"]].sum()
        parts.append(summed.assign(model=model))
        parts.append(no_touch.assign(key=NO_TOUCH, model=model))
    credits = pd.concat(parts, ignore_index=True)[CREDIT_COLUMNS].astype({"deals": "float64", "revenue": "float64"})
    credits["model"] = pd.Categorical(credits["model"], categories=MODELS)
    credits = credits.sort_values(["quarter", "model", "deals", "key"], ascending=[True, True, False, True], kind="stable")
    credits["model"] = credits["model"].astype(str)
    return credits.reset_index(drop=True)


def attribute(export, sales_activity_types: Collection[str], *, by: str = "channel",
              half_life_days: float = 7.0) -> pd.DataFrame:
    """Credit of won deals per quarter of closing, key (channel or campaign value) and model.

    A long table ``quarter, key, model, deals, revenue``: per quarter and model, ``deals`` sums to
    the won deals closed in that quarter and ``revenue`` to their amounts; deals without any touch
    appear under the key ``"(no touch)"``. Sorted by quarter, model (in :data:`MODELS` order),
    then credit (highest first).
    """
    deals, touches = _journeys(export, sales_activity_types)
    return _credit(deals, touches, by, half_life_days)


def attribution_table(credits: pd.DataFrame) -> pd.DataFrame:
    """The deal credit of :func:`attribute` wide: ``quarter, key`` and one column per model
    (0 where a model gives a key nothing), sorted by quarter, then linear credit (highest first), then key."""
    if credits.empty:
        return pd.DataFrame(columns=["quarter", "key", *MODELS])
    wide = credits.pivot_table(index=["quarter", "key"], columns="model", values="deals", aggfunc="sum",
                               fill_value=0.0, observed=True)
    wide = wide.reindex(columns=list(MODELS), fill_value=0.0).reset_index()
    wide.columns.name = None
    wide = wide.sort_values(["quarter", "linear", "key"], ascending=[True, False, True], kind="stable")
    return wide.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _attribution_png(wide: pd.DataFrame, deals_per_quarter: dict[str, int], path: Path) -> Path:
    from matplotlib import colormaps

    from leadscore.training.plots import _figure, _save

    quarters = sorted(wide["quarter"].unique())[-PLOT_QUARTERS:]
    ncols = 2 if len(quarters) > 1 else 1
    nrows = max(1, -(-len(quarters) // ncols))
    fig, grid = _figure(nrows, ncols, figsize=(6.2 * ncols, 4.2 * nrows + 0.6))
    axes = grid.ravel()
    colours = colormaps["tab10"].colors
    width = 0.8 / len(MODELS)
    for ax, quarter in zip(axes, quarters):
        part = wide.loc[wide["quarter"] == quarter]
        x = np.arange(len(part))
        for i, model in enumerate(MODELS):
            ax.bar(x + (i - (len(MODELS) - 1) / 2) * width, part[model], width, color=colours[i],
                   label=model.replace("_", " "))
        ax.set_xticks(x, part["key"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("won deals credited")
        ax.set_title(f"{quarter}: {deals_per_quarter.get(quarter, 0)} won deals", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(quarters):]:
        ax.set_axis_off()
    if quarters:
        axes[0].legend(fontsize=8, loc="upper right")
    else:
        axes[0].text(0.5, 0.5, "no won deals", ha="center", va="center", transform=axes[0].transAxes)
    fig.suptitle("Attribution of won deals by channel, per quarter of closing", fontsize=11)
    return _save(fig, path)


def write_attribution(export, sales_activity_types: Collection[str], out_dir: Path | str, *,
                      half_life_days: float = 7.0) -> dict[str, Any]:
    """Write ``attribution_channel.csv`` and ``attribution_campaign.csv`` (the long tables of
    :func:`attribute`) and ``attribution_channel.png`` (deal credit per channel, one bar per model,
    one panel for each of the last four quarters) into ``out_dir``.

    Returns a summary: ``deals`` (won deals), ``deals_without_touch``, ``deals_without_amount``,
    ``touches`` (deal–touch pairs credited), ``quarters`` (of closing, ascending), ``half_life_days``.
    """
    _check_model(MODELS[0], half_life_days)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deals, touches = _journeys(export, sales_activity_types)
    channel = _credit(deals, touches, "channel", half_life_days)
    channel.to_csv(out / "attribution_channel.csv", index=False)
    campaign = _credit(deals, touches, "campaign", half_life_days)
    campaign.to_csv(out / "attribution_campaign.csv", index=False)
    per_quarter = deals.groupby("quarter")["deal"].size().to_dict()
    _attribution_png(attribution_table(channel), per_quarter, out / "attribution_channel.png")
    summary = {
        "deals": len(deals),
        "deals_without_touch": int((~deals["deal"].isin(touches["deal"])).sum()),
        "deals_without_amount": int(deals["amount"].isna().sum()),
        "touches": len(touches),
        "quarters": sorted(per_quarter),
        "half_life_days": float(half_life_days),
    }
    (out / "attribution.html").write_text(_attribution_html(summary, channel, campaign, per_quarter, out))
    return summary


def _attribution_html(summary: dict, channel: pd.DataFrame, campaign: pd.DataFrame, per_quarter: dict[str, int],
                      out: Path) -> str:
    """The report as one page: what was counted, credit by channel per quarter, campaigns of the last quarter."""
    from leadscore.training import report_html

    models = [(m, m.replace("_", " "), "f2") for m in MODELS]
    sentences = [
        f"{summary['deals']:,} won deals in {len(summary['quarters'])} quarters, credited over {summary['touches']:,} "
        f"marketing touches before each opportunity was created ({summary['deals_without_touch']} deals without a "
        f"touch, {summary['deals_without_amount']} without an amount).",
        "Every deal gives one unit of credit per model: first touch, last touch, linear (equal), time-decay "
        f"(half-life {summary['half_life_days']:g} days) and position-based (40 % first, 40 % last, 20 % between).",
    ]
    if not per_quarter:
        return report_html.page("Which touches won the deals?", {}, sentences, "<p>No won deals.</p>")
    last = max(per_quarter)
    wide_channel = attribution_table(channel).round(2)
    wide_campaign = attribution_table(campaign)
    wide_campaign = wide_campaign.loc[wide_campaign["quarter"] == last].round(2)
    body = (f"<h2>Deal credit by channel and quarter</h2>"
            + report_html.table(wide_channel, [("quarter", "quarter", ""), ("key", "channel", ""), *models], "channel-table")
            + f"<h2>Deal credit by campaign, {html.escape(last)} ({per_quarter[last]} won deals)</h2>"
            + report_html.table(wide_campaign, [("quarter", "quarter", ""), ("key", "campaign", ""), *models],
                                "campaign-table")
            + '<h2>Plot</h2><div class="plots">'
            + report_html.image(out / "attribution_channel.png", "Deal credit per channel", wide=True) + "</div>")
    return report_html.page("Which touches won the deals?", {"quarters": f"{min(per_quarter)} – {last}"}, sentences, body)
