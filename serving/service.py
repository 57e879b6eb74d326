"""The BentoML service the CRM calls: the champion model, with the SLA rules as fallback."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

import bentoml
from bentoml.exceptions import InvalidArgument
from pydantic import Field

from leadscore.params import load_params
from leadscore.settings import get_settings
from models.base import LeadScore, score_leads
from models.policy import primary_scorer, rule_scorer
from serving.convert import request_as_of, request_tables
from serving.schemas import EXAMPLE_ACTIVITY, EXAMPLE_LEAD, LeadRequest, ScoreOut

log = logging.getLogger("leadscore.serving")


def _out(result: LeadScore, fallback_reason: str | None) -> ScoreOut:
    m = result.matrix
    return ScoreOut(
        lead_id=result.lead_id,
        probability=result.probability,
        score=result.score,
        grade=result.grade,
        reasons=[r.__dict__ for r in result.reasons],
        scorer=result.scorer,
        model_version=result.model_version,
        fallback_reason=fallback_reason if result.scorer == "rules" else None,
        fit_grade=m.fit_grade if m else None,
        interest_level=m.interest_level if m else None,
        matrix_cell=m.cell if m else None,
        recommendation=m.recommendation if m else None,
        recommendation_text=m.recommendation_text if m else None,
        sales_ready=result.sales_ready,
        what_if=result.what_if.__dict__ if result.what_if else None,
    )


@bentoml.service(name="leadscore", traffic={"timeout": 30})
class LeadScoring:
    """Loads the champion once; every request is scored by it or, when it cannot, by the rules."""

    def __init__(self) -> None:
        settings = get_settings()
        params = load_params(settings.params_path)
        self.rules = rule_scorer(params.features, settings)
        self.scorer, self.fallback_reason = primary_scorer(params.features, settings)
        if self.fallback_reason:
            log.warning("serving with the SLA rules: %s", self.fallback_reason)
        else:
            log.info("serving model version %s", self.scorer.version)

    @bentoml.api(route="/reload")
    def reload(self) -> dict:
        """Load the registry's current champion (after `leadscore promote` or `rollback`) without a restart.

        The new scorer replaces the old one only once it has loaded; if it cannot be loaded, the
        service keeps answering with what it had and says why."""
        settings = get_settings()
        params = load_params(settings.params_path)
        before = self.scorer.version
        scorer, why = primary_scorer(params.features, settings)
        if why and self.scorer is not self.rules:
            log.warning("reload kept model version %s: %s", before, why)
            return {"scorer": self.scorer.name, "model_version": before, "changed": False, "reason": why}
        self.scorer, self.fallback_reason = scorer, why
        log.info("reload: %s → %s", before, scorer.version)
        return {"scorer": scorer.name, "model_version": scorer.version, "changed": scorer.version != before,
                "reason": why}

    def __is_ready__(self) -> bool:
        return self.scorer is not None and self.rules is not None

    @bentoml.api(route="/score")
    def score(
        self,
        leads: list[LeadRequest] = Field(
            min_length=1, max_length=1000, examples=[[{"lead": EXAMPLE_LEAD, "activities": [EXAMPLE_ACTIVITY]}]],
            description="1 to 1,000 leads, each with its activity log.",
        ),
        as_of: datetime | None = Field(None, description="Score as of this moment (ISO 8601); default now."),
        top_k: int = Field(3, ge=0, le=20, description="How many positive and how many negative reasons per lead."),
        language: Literal["en", "de"] = Field("en", description="Language of reasons and recommendation."),
        what_if: bool = Field(False, description="For leads below the sales threshold, the fewest actions that would "
                              "lift them over it (model only; ~20 ms per lead)."),
    ) -> list[ScoreOut]:
        """Probability, 1–99 score, grade A–D, reasons, fit × interest and recommendation per lead, in request order."""
        ids = [r.lead.lead_id for r in leads]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidArgument(f"leads: lead_id {dup!r} appears more than once; expected unique ids")
        moment = request_as_of(as_of)
        try:
            tables = request_tables(leads, moment)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        why = self.fallback_reason
        try:
            results = score_leads(self.scorer, *tables, top_k=top_k, lang=language, what_if=what_if)
        except Exception as exc:  # the model failing on a request must not fail the request
            if self.scorer is self.rules:
                raise
            why = f"model failed on this request: {type(exc).__name__}"
            log.warning("model failed, rules answer: %s", type(exc).__name__)
            results = score_leads(self.rules, *tables, top_k=top_k, lang=language)
        return [_out(r, why) for r in results]
