"""Point-in-time snapshots and labels.

A training row is a (lead, as_of) pair drawn every ``snapshot_every_days`` from the lead's
creation while it has no opportunity (so every feature is pre-hand-over), up to a maximum age.
Its label is 1 when the lead's first opportunity is created within the label horizon of as_of and
is later won; 0 when it is lost or no opportunity comes within the horizon. A row whose horizon
has not passed by the end of the export, or whose opportunity is still open, is censored: left
out, never counted as a negative.

The horizon is ``features.horizon_days`` days, or with ``auto`` the data's own (``resolve_horizon``):
the whole weeks that cover ``features.horizon_coverage`` of the gaps between a snapshot and its
lead's won opportunity. A fixed 90 days labelled 8-13 % of later wins as losses on unseen funnels
(mean prediction 0.046 against a win rate of 0.055).

An export whose deal tracking starts long after its leads (``deal_tracking_start``) would label
every earlier lead lost; training starts where the deals start instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from leadscore.config.params import FeatureParams
from leadscore.features.contract import Export

DAY = pd.Timedelta(days=1)
WEEK_DAYS = 7  # an auto horizon is whole weeks: snapshots are weekly, so finer steps mean nothing
# A deal-tracking gap is declared when the leads created before the first opportunity would all
# have stayed without one this rarely, judged by how fast later leads got theirs (one in a million:
# a normal export whose first deal simply comes a few days after its first lead never gets near it).
GAP_CHANCE = 1e-6


@dataclass
class SnapshotCounts:
    leads: int
    snapshots: int
    censored_horizon: int
    censored_open_deal: int
    positives: int


def first_opportunities(opportunities: pd.DataFrame) -> pd.DataFrame:
    """The first opportunity per lead: the hand-over from marketing to sales."""
    return opportunities.sort_values(["lead_id", "created_at"], kind="stable").drop_duplicates("lead_id")


@dataclass(frozen=True)
class DealTracking:
    """Where an export's deal tracking starts, when that is long after its first leads."""

    starts: pd.Timestamp  # the first opportunity's creation: training starts here
    first_lead: pd.Timestamp
    leads_before: int  # leads created before it: left out of training
    expected_opportunities: float  # how many of them would have had one by then, at later leads' pace

    def sentence(self) -> str:
        return (f"deal tracking starts {self.starts:%Y-%m-%d}, {(self.starts - self.first_lead).days} days after the "
                f"first lead: {self.leads_before:,} leads created before it have no opportunity recorded by then "
                f"(about {self.expected_opportunities:,.0f} expected at the pace of later leads), so the training "
                f"window starts {self.starts:%Y-%m-%d} and those leads are left out instead of being labelled lost")

    def to_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in asdict(self).items()}


def deal_tracking_start(export: Export) -> DealTracking | None:
    """A deal-tracking gap: leads created before the first opportunity that, at the pace later
    leads got their first opportunity, would almost surely (``GAP_CHANCE``) not all have stayed
    without one. None when there is no such gap (or no opportunity at all)."""
    leads, opps = export.leads, export.opportunities
    if opps.empty or leads.empty:
        return None
    starts = opps["created_at"].min()
    created = leads["created_at"]
    before = created < starts
    if not before.any():
        return None
    later = leads.loc[~before, ["lead_id", "created_at"]]
    first = first_opportunities(opps).set_index("lead_id")["created_at"]
    days_to_deal = np.sort((later["lead_id"].map(first) - later["created_at"]).dt.total_seconds().fillna(np.inf).to_numpy())
    if len(days_to_deal) == 0:
        return None
    waited = (starts - created[before]).dt.total_seconds().to_numpy()
    # share of later leads still without an opportunity that long after their creation
    still_without = 1 - np.searchsorted(days_to_deal, waited, side="right") / len(days_to_deal)
    if (still_without <= 0).any():
        log_chance = -np.inf
    else:
        log_chance = float(np.log(still_without).sum())
    if log_chance >= math.log(GAP_CHANCE):
        return None
    return DealTracking(starts=starts, first_lead=created.min(), leads_before=int(before.sum()),
                        expected_opportunities=float((1 - still_without).sum()))


@dataclass(frozen=True)
class Horizon:
    """The label horizon a training set used, and how much of the past wins it covers."""

    days: int
    coverage: float  # share of won leads' snapshot-to-opportunity gaps within ``days``
    won_snapshots: int  # the gaps it was measured on
    chosen_by: str  # "auto" (features.horizon_coverage) or "params" (a fixed features.horizon_days)

    def sentence(self) -> str:
        how = "" if self.chosen_by == "auto" else " (features.horizon_days)"
        return f"label horizon {self.days} days{how}: covers {self.coverage:.0%} of past wins"

    def to_dict(self) -> dict:
        return asdict(self)


def _pre_deal_snapshots(export: Export, cfg: FeatureParams, since: pd.Timestamp | None) -> pd.DataFrame:
    """Every snapshot (lead_id, as_of, opp_created_at, opp_stage) while the lead has no opportunity."""
    leads = export.leads[["lead_id", "created_at"]]
    if since is not None:
        leads = leads[leads["created_at"] >= since]
    k = np.arange(0, cfg.max_snapshot_age_days // cfg.snapshot_every_days + 1)
    snaps = leads.loc[leads.index.repeat(len(k))].reset_index(drop=True)
    snaps["as_of"] = snaps["created_at"] + pd.to_timedelta(np.tile(k, len(leads)) * cfg.snapshot_every_days, unit="D")
    opp = first_opportunities(export.opportunities)[["lead_id", "created_at", "stage"]].rename(
        columns={"created_at": "opp_created_at", "stage": "opp_stage"}
    )
    snaps = snaps.merge(opp, on="lead_id", how="left")
    # Only while the lead has no opportunity: everything after the hand-over is sales' data.
    return snaps.loc[snaps["opp_created_at"].isna() | (snaps["as_of"] <= snaps["opp_created_at"])]


def horizon_bounds(cfg: FeatureParams) -> tuple[int, int]:
    """The horizons ``auto`` may choose: one week to the oldest snapshot's age (in whole weeks).
    Longer would censor more of the export's end than a lead's whole nurturing span."""
    return WEEK_DAYS, max(WEEK_DAYS, cfg.max_snapshot_age_days // WEEK_DAYS * WEEK_DAYS)


def resolve_horizon(export: Export, cfg: FeatureParams, since: pd.Timestamp | None = None) -> Horizon:
    """``features.horizon_days`` as a number of days. ``auto``: the smallest whole number of weeks
    (within ``horizon_bounds``) that covers ``features.horizon_coverage`` of the gaps between a
    snapshot and its lead's won opportunity's creation, over the snapshots of leads that won.
    A fixed number is used as given; its coverage is measured all the same."""
    snaps = _pre_deal_snapshots(export, cfg, since)
    won = snaps[snaps["opp_stage"] == "won"]
    gaps = ((won["opp_created_at"] - won["as_of"]) / DAY).to_numpy()
    if cfg.horizon_days != "auto":
        days = int(cfg.horizon_days)
        return Horizon(days, float((gaps <= days).mean()) if len(gaps) else float("nan"), len(gaps), "params")
    if len(gaps) == 0:
        raise ValueError("features.horizon_days is 'auto' but the export has no won opportunity to measure "
                         "a horizon on: set features.horizon_days to a number of days")
    low, high = horizon_bounds(cfg)
    needed = float(np.quantile(gaps, cfg.horizon_coverage, method="inverted_cdf"))
    days = int(min(high, max(low, math.ceil(needed / WEEK_DAYS) * WEEK_DAYS)))
    return Horizon(days, float((gaps <= days).mean()), len(gaps), "auto")


def training_snapshots(export: Export, cfg: FeatureParams, *, horizon_days: int | None = None,
                       since: pd.Timestamp | None = None) -> tuple[pd.DataFrame, SnapshotCounts]:
    """Labelled snapshots ``lead_id, as_of, label`` for an export, and what was left out.

    ``horizon_days`` (else ``cfg.horizon_days``, ``auto`` resolved from the export) is the label
    horizon; ``since`` leaves out leads created before it (a deal-tracking gap)."""
    if horizon_days is None:
        horizon_days = resolve_horizon(export, cfg, since).days
    snaps = _pre_deal_snapshots(export, cfg, since)
    horizon = pd.Timedelta(days=horizon_days)
    in_horizon = snaps["opp_created_at"].notna() & (snaps["opp_created_at"] <= snaps["as_of"] + horizon)
    # Censor on time alone: keeping early-closed deals from the last horizon would bias labels.
    unobserved = snaps["as_of"] + horizon > export.data_end
    open_deal = in_horizon & (snaps["opp_stage"] == "open") & ~unobserved
    total = len(snaps)
    keep = ~unobserved & ~open_deal
    snaps = snaps.loc[keep].copy()
    snaps["label"] = (in_horizon[keep] & (snaps["opp_stage"] == "won")).astype("int8")
    snaps = snaps[["lead_id", "as_of", "label"]].sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)
    counts = SnapshotCounts(
        leads=int(snaps["lead_id"].nunique()),
        snapshots=len(snaps),
        censored_horizon=int(unobserved.sum()),
        censored_open_deal=int(open_deal.sum()),
        positives=int(snaps["label"].sum()),
    )
    assert counts.snapshots + counts.censored_horizon + counts.censored_open_deal == total
    return snaps, counts


def scoring_snapshots(export: Export, as_of: pd.Timestamp) -> pd.DataFrame:
    """Leads to score at ``as_of``: created by then, with no opportunity created before it."""
    leads = export.leads
    handed_over = export.opportunities.loc[export.opportunities["created_at"] < as_of, "lead_id"]
    chosen = leads.loc[(leads["created_at"] <= as_of) & ~leads["lead_id"].isin(handed_over), ["lead_id"]]
    return chosen.assign(as_of=as_of).reset_index(drop=True)
