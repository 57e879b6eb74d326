"""API requests → the same tables a CRM export gives, so batch and live features are one code path."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from features.contract import check_activities, check_leads
from serving.schemas import LeadRequest


def request_as_of(as_of: datetime | None) -> pd.Timestamp:
    """The scoring moment as naive UTC; now when not given."""
    moment = as_of or datetime.now(timezone.utc)
    ts = pd.Timestamp(moment)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("ns")


def request_tables(leads: list[LeadRequest], as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(snapshots, leads, activities) for a scoring request, normalised by the export contract's checks."""
    lead_rows = [r.lead.model_dump(mode="json") for r in leads]
    raw_leads = pd.DataFrame(lead_rows)
    clean_leads, problems, _ = check_leads(raw_leads, "request.leads")
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))
    act_rows = [
        {"lead_id": r.lead.lead_id, **a.model_dump(mode="json")} for r in leads for a in r.activities
    ]
    raw_acts = pd.DataFrame(act_rows, columns=["lead_id", "occurred_at", "activity_type", "channel", "campaign"])
    clean_acts, problems, _ = check_activities(raw_acts, set(clean_leads["lead_id"]), "request.activities")
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))
    snapshots = pd.DataFrame({"lead_id": [r.lead.lead_id for r in leads], "as_of": [as_of] * len(leads)})
    snapshots["as_of"] = snapshots["as_of"].astype("datetime64[ns]")
    return snapshots, clean_leads, clean_acts
