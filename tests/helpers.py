"""Small hand-made exports for tests where the right answer is known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_tables(folder: Path, leads: list[dict], activities: list[dict], opportunities: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(leads).to_csv(folder / "leads.csv", index=False)
    pd.DataFrame(activities, columns=["lead_id", "occurred_at", "activity_type", "channel"]).to_csv(
        folder / "activities.csv", index=False
    )
    pd.DataFrame(opportunities, columns=["lead_id", "created_at", "closed_at", "stage", "amount"]).to_csv(
        folder / "opportunities.csv", index=False
    )
    return folder


def tiny_export(folder: Path) -> Path:
    """Three leads: L1 wins, L2 loses, L3 never gets a deal. One sales call after L1's hand-over."""
    leads = [
        {"lead_id": "L1", "created_at": "2025-01-01T00:00:00", "email": "a.b@acme.de", "industry": "software",
         "employees": 500, "country": "DE", "job_title": "Geschäftsführer", "lead_source": "webinar", "budget_confirmed": "yes"},
        {"lead_id": "L2", "created_at": "2025-01-05T00:00:00", "email": "c.d@gmail.com", "industry": "education",
         "employees": 5, "country": "US", "job_title": "Werkstudent", "lead_source": "organic_search", "budget_confirmed": "no"},
        {"lead_id": "L3", "created_at": "2025-02-01T00:00:00", "email": "e.f@scorely.io", "industry": "software",
         "employees": 80, "country": "FR", "job_title": "Marketing Manager", "lead_source": "linkedin", "budget_confirmed": ""},
    ]
    activities = [
        {"lead_id": "L1", "occurred_at": "2025-01-03T10:00:00", "activity_type": "pricing_page_view", "channel": "web"},
        {"lead_id": "L1", "occurred_at": "2025-01-10T10:00:00", "activity_type": "demo_request", "channel": "web"},
        {"lead_id": "L1", "occurred_at": "2025-02-20T10:00:00", "activity_type": "sales_call", "channel": "phone"},
        {"lead_id": "L2", "occurred_at": "2025-01-06T10:00:00", "activity_type": "email_click", "channel": "email"},
        {"lead_id": "L3", "occurred_at": "2025-02-02T10:00:00", "activity_type": "email_open", "channel": "email"},
    ]
    opportunities = [
        {"lead_id": "L1", "created_at": "2025-02-15T00:00:00", "closed_at": "2025-03-30T00:00:00", "stage": "won", "amount": 20000},
        {"lead_id": "L2", "created_at": "2025-03-01T00:00:00", "closed_at": "2025-03-20T00:00:00", "stage": "lost", "amount": 5000},
    ]
    return write_tables(folder, leads, activities, opportunities)


def training_features(export, params, spec=None):
    """(snapshots, spec, raw features) of an export's training snapshots, as `leadscore features`
    builds them: the spec inferred from the export (or ``spec``), categories learned from the rows."""
    from leadscore.features.build import compute_features, infer_spec, learn_categories
    from leadscore.features.snapshots import training_snapshots

    snaps, _ = training_snapshots(export, params.features)
    spec = spec or infer_spec(export.leads, export.activities, params.features)
    raw = compute_features(snaps, export.leads, export.activities, spec)
    return snaps, learn_categories(spec, raw, params.features.max_category_levels), raw
