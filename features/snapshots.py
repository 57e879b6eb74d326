"""Point-in-time snapshots and labels.

A training row is a (lead, as_of) pair drawn every ``snapshot_every_days`` from the lead's
creation while it has no opportunity (so every feature is pre-hand-over), up to a maximum age.
Its label is 1 when the lead's first opportunity is created within ``horizon_days`` of as_of and
is later won; 0 when it is lost or no opportunity comes within the horizon. A row whose horizon
has not passed by the end of the export, or whose opportunity is still open, is censored: left
out, never counted as a negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.config.params import FeatureParams
from leadscore.features.contract import Export

DAY = pd.Timedelta(days=1)


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


def training_snapshots(export: Export, cfg: FeatureParams) -> tuple[pd.DataFrame, SnapshotCounts]:
    """Labelled snapshots ``lead_id, as_of, label`` for an export, and what was left out."""
    leads = export.leads[["lead_id", "created_at"]]
    k = np.arange(0, cfg.max_snapshot_age_days // cfg.snapshot_every_days + 1)
    snaps = leads.loc[leads.index.repeat(len(k))].reset_index(drop=True)
    snaps["as_of"] = snaps["created_at"] + pd.to_timedelta(np.tile(k, len(leads)) * cfg.snapshot_every_days, unit="D")
    opp = first_opportunities(export.opportunities)[["lead_id", "created_at", "stage"]].rename(
        columns={"created_at": "opp_created_at", "stage": "opp_stage"}
    )
    snaps = snaps.merge(opp, on="lead_id", how="left")
    # Only while the lead has no opportunity: everything after the hand-over is sales' data.
    snaps = snaps.loc[snaps["opp_created_at"].isna() | (snaps["as_of"] <= snaps["opp_created_at"])]
    horizon = pd.Timedelta(days=cfg.horizon_days)
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
