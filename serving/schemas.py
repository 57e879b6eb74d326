"""Request and response of ``POST /score``: pydantic models whose fields explain themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_LEAD = {
    "lead_id": "L000123",
    "created_at": "2026-05-02T09:30:00",
    "email": "jana.kraus@example-maschinenbau.de",
    "industry": "manufacturing",
    "employees": 420,
    "country": "DE",
    "job_title": "Leiterin Einkauf",
    "lead_source": "webinar",
}
EXAMPLE_ACTIVITY = {"occurred_at": "2026-06-01T14:05:00", "activity_type": "pricing_page_view", "channel": "web"}


class LeadIn(BaseModel):
    """A lead's profile as the CRM holds it. Extra keys are profile attributes (the export contract)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE_LEAD]})

    lead_id: str = Field(min_length=1, max_length=200, description="The CRM's id of the lead.")
    created_at: datetime = Field(description="When the lead entered the CRM (ISO 8601).")
    email: str | None = Field(None, max_length=320, description="Used only for its domain (free-mail, competitor); never stored or logged.")
    company: str | None = Field(None, max_length=500, description="Company name (not a feature).")
    industry: str | None = Field(None, max_length=200, description="Industry.")
    employees: float | None = Field(None, ge=0, allow_inf_nan=False, description="Number of employees.")
    annual_revenue: float | None = Field(None, ge=0, allow_inf_nan=False, description="Annual revenue in EUR.")
    country: str | None = Field(None, max_length=100, description="ISO 3166 alpha-2 country code, e.g. DE.")
    job_title: str | None = Field(None, max_length=300, description="Job title, German or English.")
    lead_source: str | None = Field(None, max_length=200, description="Where the lead came from.")


class ActivityIn(BaseModel):
    """One thing the lead did. Activities at or after ``as_of`` are ignored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_ACTIVITY]})

    occurred_at: datetime = Field(description="When it happened (ISO 8601).")
    activity_type: str = Field(min_length=1, max_length=100, description="e.g. email_click, pricing_page_view, demo_request.")
    channel: str | None = Field(None, max_length=100, description="e.g. email, web, event.")
    campaign: str | None = Field(None, max_length=300, description="Campaign name.")


class LeadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead: LeadIn = Field(description="The lead's profile.")
    activities: list[ActivityIn] = Field(default_factory=list, max_length=10_000, description="The lead's activity log.")


class ReasonOut(BaseModel):
    feature: str = Field(description="The business signal, e.g. pricing_page_view (all its time windows summed) or seniority.")
    value: str | float | None = Field(description="The value the sentence describes.")
    effect: float = Field(description="Push on the score: log-odds for the model, points for the rules; > 0 raises it.")
    text: str = Field(description="A sentence a sales rep can read, in the requested language.")
    group: Literal["fit", "interest"] | None = Field(None, description="fit: who the lead is; interest: what it did.")


class WhatIfOut(BaseModel):
    actions: dict[str, int] = Field(description="Activity type → how many more, e.g. {\"demo_request\": 1}.")
    text: str = Field(description="The actions in the requested language, e.g. '1× demo request + 2× pricing page visit'.")
    probability: float = Field(ge=0, le=1, description="The model's probability with those actions.")
    score: int = Field(ge=1, le=99)


class ScoreOut(BaseModel):
    lead_id: str
    probability: float = Field(ge=0, le=1, description="Probability that the lead becomes a won deal within the horizon.")
    score: int = Field(ge=1, le=99, description="The probability as a 1–99 score.")
    grade: Literal["A", "B", "C", "D"] = Field(description="A best … D weakest, from cut-offs stored with the scorer.")
    reasons: list[ReasonOut] = Field(description="Strongest reasons first.")
    scorer: Literal["model", "rules"] = Field(description="Which scorer answered.")
    model_version: str | None = Field(description="Registry version of the model, or rules:<version>.")
    fallback_reason: str | None = Field(description="Why the rules answered instead of the model; null otherwise.")
    fit_grade: Literal["A", "B", "C", "D"] | None = Field(None, description="Fit (who the lead is), A best … D.")
    interest_level: int | None = Field(None, ge=1, le=4, description="Interest (what it did), 1 highest … 4.")
    matrix_cell: str | None = Field(None, description="The fit × interest grid cell, A1 … D4.")
    recommendation: Literal["hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention"] | None = Field(
        None, description="What the 4-field matrix suggests. Advice for people: nothing is disqualified automatically.")
    recommendation_text: str | None = Field(None, description="The recommendation in the requested language.")
    sales_ready: bool = Field(False, description="At or above the sales (SQL) threshold stored with the scorer.")
    what_if: WhatIfOut | None = Field(
        None, description="For a lead below the sales threshold (when what_if was asked): the fewest actions that would lift it over.")
