"""The one interface of every scorer, so serving and evaluation never care which one answered."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from leadscore.features.build import compute_features
from leadscore.features.online import OnlineFeatures, activity_lists, as_of_micros, profile_dicts
from leadscore.features.spec import FeatureSpec
from leadscore.models.decision import Lang, LeadScore, ScorerName
from leadscore.models.whatif import what_would_change


class Scorer(Protocol):
    """Anything that turns raw features into lead scores with reasons."""

    name: ScorerName
    version: str
    spec: FeatureSpec

    def score_frame(self, raw: pd.DataFrame, lead_ids: list[str], top_k: int = 3, lang: Lang = "en") -> list[LeadScore]: ...


def score_leads(
    scorer: Scorer,
    snapshots: pd.DataFrame,
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    top_k: int = 3,
    engine: str = "numpy",
    lang: Lang = "en",
    what_if: bool = False,
) -> list[LeadScore]:
    """Score ``(lead_id, as_of)`` rows with any scorer: one feature definition for all paths.

    ``what_if``: for model scores below the sales threshold, the smallest set of actions that would
    lift them over it (``models.whatif``; ~20 ms per lead)."""
    raw = compute_features(snapshots, leads, activities, scorer.spec, engine=engine)
    results = scorer.score_frame(raw, snapshots["lead_id"].astype(str).tolist(), top_k=top_k, lang=lang)
    if what_if and scorer.name == "model":
        online = OnlineFeatures(scorer.spec)
        wanted = {r.lead_id for r in results if not r.sales_ready}
        profiles = profile_dicts(leads[leads["lead_id"].astype(str).isin(wanted)])
        histories = activity_lists(activities[activities["lead_id"].astype(str).isin(wanted)])
        for result, as_of in zip(results, snapshots["as_of"].tolist()):
            if result.lead_id in wanted:
                result.what_if = what_would_change(scorer, online, profiles[result.lead_id],
                                                   histories.get(result.lead_id, []), as_of_micros(as_of), lang=lang)
    return results
