"""A validated request → the live scorers' inputs, without pandas on the model's or the rules' path.

``inputs`` gives each lead as ``features.online`` takes it (a profile dict normalised as the export
contract normalises a leads row, activity tuples in µs); ``score_model`` and ``score_rules`` turn
them into ``LeadScore`` objects and the raw feature values the ledger records. The batch path
(``compute_features``) stays the definition: ``tests/serving`` holds both scorers to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

import numpy as np
import pandas as pd

from leadscore.features.catalog import label
from leadscore.features.online import Activity, OnlineFeatures
from leadscore.features.spec import FeatureSpec, is_sales_type
from leadscore.models.decision import Lang, LeadScore
from leadscore.models.lgbm import LeadModel
from leadscore.models.rules import RuleScorer
from leadscore.serving.schemas import LeadRequest

_EPOCH = datetime(1970, 1, 1)
_MICRO = pd.Timedelta(microseconds=1).to_pytimedelta()


def micros(moment: datetime) -> int:
    """A naive UTC datetime as µs since the epoch, exactly (integer arithmetic)."""
    return (moment - _EPOCH) // _MICRO


def inputs(item: LeadRequest, reads: Collection[str] | None = None) -> tuple[dict[str, object], list[Activity]]:
    """(profile, activities) of one request lead, as ``profile_dicts`` / ``activity_lists`` give a
    normalised export's row (the schema already stripped text and lower-cased activity types).

    Of the extra attributes only those in ``reads`` (the profile columns some scorer reads) enter
    the profile: a column the CRM sends that was left out (personal data, ``features.exclude``) is
    accepted by the API and dropped here, on arrival. ``None`` keeps them all (the model check's
    test lead)."""
    lead = item.lead
    profile: dict[str, object] = {
        "lead_id": lead.lead_id,
        "created_at": pd.Timestamp(lead.created_at),
        "email": lead.email, "company": lead.company, "industry": lead.industry,
        "employees": np.nan if lead.employees is None else float(lead.employees),
        "annual_revenue": np.nan if lead.annual_revenue is None else float(lead.annual_revenue),
        "country": lead.country, "job_title": lead.job_title, "lead_source": lead.lead_source,
    }
    extra = lead.attributes()
    profile.update(extra if reads is None else {k: v for k, v in extra.items() if k in reads})
    activities = [(micros(a.occurred_at), a.activity_type, a.channel) for a in item.activities]
    return profile, activities


def warnings_for(
    spec: FeatureSpec, raw: dict[str, object], activities: list[Activity], as_of_us: int, lang: Lang = "en"
) -> list[str]:
    """What the model could not use: category values it never saw, activity types it does not know,
    in ``lang`` (reps read these; the English ones keep the field's key for integrators)."""
    out = []
    for f in spec.features:
        value = raw.get(f.name)
        if f.kind == "category" and isinstance(value, str) and value not in (f.categories or ()):
            if lang == "de":
                out.append(f"{label(f.name, 'de')}: Wert „{value[:60]}“ ist dem Modell unbekannt und zählt als fehlend")
            else:
                out.append(f"{f.name}: unknown value {value[:60]!r}, scored as missing")
    known = set(spec.activity_types)
    unknown = Counter(kind for at, kind, _ in activities
                      if at < as_of_us and kind not in known and not is_sales_type(kind, spec.sales_activity_types))
    for kind, n in sorted(unknown.items()):
        if lang == "de":
            out.append(f"Aktivitätstyp „{kind[:60]}“: dem Modell unbekannt, nicht berücksichtigt ({n}×)")
        else:
            out.append(f"activity_type {kind[:60]!r}: unknown to the model, ignored ({n}×)")
    return out


def score_model(
    model: LeadModel, leads: list[tuple[dict, list[Activity]]], as_of_us: int, top_k: int, lang: Lang
) -> tuple[list[LeadScore], list[dict[str, object]]]:
    """The model's scores and reasons for each lead, and the raw feature values behind them."""
    raws, rows = [], []
    for profile, activities in leads:
        raw, row = model.online.features(profile, activities, as_of_us)
        raws.append(raw)
        rows.append(row)
    contrib = model.contributions(np.vstack(rows))
    results = model._results(contrib, raws, [str(p["lead_id"]) for p, _ in leads], top_k, lang)
    return results, raws


def score_rules(
    rules: RuleScorer, online: OnlineFeatures, leads: list[tuple[dict, list[Activity]]], as_of_us: int,
    top_k: int, lang: Lang,
) -> tuple[list[LeadScore], list[dict[str, object]]]:
    """The SLA rules' points, grade and reasons for each lead, from the same online features: the
    API's fallback, so without pandas (``RuleScorer.score_rows``, the batch path's rule table)."""
    raws = [online.features(profile, activities, as_of_us)[0] for profile, activities in leads]
    results = rules.score_rows(raws, [str(p["lead_id"]) for p, _ in leads], top_k=top_k, lang=lang)
    return results, raws


# An interaction that shows interest: not logged by sales, not a way of saying no.
_NOT_INTEREST = frozenset({"unsubscribe", "email_bounce"})
ENGAGED_DAYS = 90


def engaged(activities: list[Activity], as_of_us: int, sales_types) -> bool:
    """Whether the lead did anything of interest in the last 90 days before ``as_of``."""
    since = as_of_us - ENGAGED_DAYS * 86_400_000_000
    return any(since <= at < as_of_us and kind not in _NOT_INTEREST and not is_sales_type(kind, sales_types)
               for at, kind, _ in activities)
