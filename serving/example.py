"""A ready-to-send ``/score`` body built from a real lead of an export (for the README's curl)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leadscore.features.build import compute_features
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots


def example_request(data: Path | str, max_activities: int = 15) -> dict:
    """A request body for a real, engaged lead still without an opportunity at the export's end.

    Among open leads with at most ``max_activities`` activities in the last 90 days (so the curl
    stays readable), the one the SLA rules rank highest.
    """
    from leadscore.config.params import load_params
    from leadscore.config.settings import get_settings
    from leadscore.models.policy import rule_scorer

    export = read_export(data)
    as_of = export.data_end
    open_leads = scoring_snapshots(export, as_of)["lead_id"]
    acts = export.activities[
        export.activities["lead_id"].isin(open_leads)
        & (export.activities["occurred_at"] >= as_of - pd.Timedelta(days=90))
    ]
    counts = acts.groupby("lead_id").size()
    short = pd.DataFrame({"lead_id": counts.index[counts <= max_activities], "as_of": as_of})
    lead_id = open_leads.iloc[0]
    if len(short):
        rules = rule_scorer(load_params(get_settings().params_path).features)
        points = rules.points(compute_features(short, export.leads, export.activities, rules.spec))[0]
        lead_id = short["lead_id"].iloc[int(points.argmax())]
    lead = export.leads[export.leads["lead_id"] == lead_id].iloc[0].to_dict()
    lead = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in lead.items() if pd.notna(v)}
    if "email" in lead:  # only the domain matters; keep the person's address out of shell history
        lead["email"] = "someone@" + str(lead["email"]).rsplit("@", 1)[-1]
    mine = acts[acts["lead_id"] == lead_id].sort_values("occurred_at")
    activities = [
        {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()
         if k not in ("lead_id", "campaign") and pd.notna(v)}
        for row in mine.to_dict("records")
    ]
    return {"leads": [{"lead": lead, "activities": activities}], "as_of": as_of.isoformat()}
