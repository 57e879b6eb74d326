"""Requests and responses of the scoring API: pydantic models whose fields explain themselves.

Validation is strict, because a CRM integration that sends garbage should hear about it at once:
NaN, ±inf, out-of-range numbers, negative sizes, malformed, ambiguous or impossible dates, booleans
where a number is meant, ``as_of`` before a lead's ``created_at`` and unknown keys are 422 errors
naming the field. Dates are read by ``leadscore.config.dates`` (ISO 8601; ``dd.mm.yyyy`` only with
``LEADSCORE_DATE_FORMAT=de``). Sizes may come as numeric text, as CRMs send every property ("250"),
when the text is exactly a number; empty text is missing. Unknown category values and activity
types are not errors — the model treats them as missing or ignores them — and come back as
warnings on the lead.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from leadscore.config.dates import EARLIEST, LATEST, DateFormat, parse_datetime

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

# What a timestamp may be: the range pandas' nanoseconds hold (the batch path's limit: EARLIEST,
# LATEST from leadscore.config.dates), and not later than now, give or take the clock skew the
# export contract allows.
CLOCK_SKEW = timedelta(minutes=5)
# Beyond these a size is a typo, not a company (the largest employer has ~2.1 M staff).
MAX_EMPLOYEES = 10_000_000
MAX_REVENUE = 1e13
MAX_EXTRA_NUMBER = 1e15
MAX_EXTRA_TEXT = 500
# A score that moved by at least this many points is a trend; less is noise.
TREND_POINTS = 3


@lru_cache(maxsize=1)
def date_format() -> DateFormat:
    """LEADSCORE_DATE_FORMAT, read once per process (settings do not change while the service runs)."""
    from leadscore.config.settings import get_settings

    return get_settings().date_format


def read_date(value: object, field: str) -> object:
    """A date as sent: text through the one date parser (never a guess); datetime objects as they are.
    Numbers are refused: a Unix timestamp in seconds or milliseconds would have to be guessed."""
    if isinstance(value, str):
        return parse_datetime(value, date_format(), field)
    if isinstance(value, (datetime, date)) or value is None:
        return value
    kind = "boolean" if isinstance(value, bool) else "number" if isinstance(value, (int, float)) else type(value).__name__
    raise ValueError(f"{field}: expected an ISO 8601 date as text (e.g. 2026-06-03T14:05:00), found a {kind}")


def naive_utc(value: datetime, field: str) -> datetime:
    """``value`` as naive UTC, inside the range the batch path can represent and not in the future."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"{field}: expected a date between 1678 and 2261, found one {'before' if value < EARLIEST else 'after'}")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    if value > now + CLOCK_SKEW:
        raise ValueError(f"{field}: expected a time not in the future (now is {now:%Y-%m-%dT%H:%M:%S} UTC), "
                         f"found a later one")
    return value


# Numeric text as CRMs send it: digits, optional sign, point and exponent. Not "1,500" (thousands or
# a German decimal?), not "NaN"/"inf", not "250 employees": those would be a guessed number.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def read_number(value: object, field: str) -> object:
    """A lead's numeric property as sent: a number; numeric text read exactly ("250" → 250); empty
    text as missing. A boolean is refused (true is not 1 employee), so is text that is not a number."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a number, found a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _NUMBER_TEXT.fullmatch(text):
            # The text itself is not quoted: a CRM that maps the wrong field sends e-mail addresses here.
            raise ValueError(f"{field}: expected a number such as 250 or 1.5e3 (as text: digits with an optional "
                             f"sign, decimal point and exponent, no thousands separators), found other text "
                             f"({len(text)} characters)")
        return float(text)
    return value


def _clean_text(value: str | None) -> str | None:
    # As the export contract normalises text cells: stripped, empty as missing.
    if value is None:
        return None
    text = value.strip()
    return text or None


class LeadIn(BaseModel):
    """A lead's profile as the CRM holds it. Further keys are profile attributes of the export
    contract (e.g. ``budget_confirmed``); keys the scorers do not know are rejected."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE_LEAD]})

    lead_id: str = Field(min_length=1, max_length=200, description="The CRM's id of the lead.")
    created_at: datetime = Field(description="When the lead entered the CRM (ISO 8601; naive means UTC; "
                                 "dd.mm.yyyy with LEADSCORE_DATE_FORMAT=de). Not after as_of.")
    email: str | None = Field(None, max_length=320, description="Used only for its domain (free-mail, competitor); never stored or logged.")
    company: str | None = Field(None, max_length=500, description="Company name (not a feature, never logged).")
    industry: str | None = Field(None, max_length=200, description="Industry.")
    employees: float | None = Field(None, ge=0, le=MAX_EMPLOYEES, allow_inf_nan=False,
                                    description="Number of employees; numeric text (\"250\") is read exactly, empty text is missing.")
    annual_revenue: float | None = Field(None, ge=0, le=MAX_REVENUE, allow_inf_nan=False,
                                         description="Annual revenue in EUR; numeric text is read exactly, empty text is missing.")
    country: str | None = Field(None, max_length=100, description="ISO 3166 alpha-2 country code, e.g. DE.")
    job_title: str | None = Field(None, max_length=300, description="Job title, German or English.")
    lead_source: str | None = Field(None, max_length=200, description="Where the lead came from.")
    do_not_profile: bool = Field(
        False, description="The lead objected to profiling (GDPR Art. 21): it is not scored, and the answer says so.")

    @field_validator("lead_id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("lead_id: expected a non-empty id, found only spaces")
        return text

    @field_validator("created_at", mode="before")
    @classmethod
    def _created_read(cls, value: object) -> object:
        return read_date(value, "created_at")

    @field_validator("created_at")
    @classmethod
    def _created_in_range(cls, value: datetime) -> datetime:
        return naive_utc(value, "created_at")

    @field_validator("employees", "annual_revenue", mode="before")
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> object:
        return read_number(value, info.field_name)

    @field_validator("email", "company", "industry", "country", "job_title", "lead_source")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _clean_text(value)

    @model_validator(mode="after")
    def _plain_extras(self) -> "LeadIn":
        """Extra attributes are scalars: finite numbers of sane size, short text, booleans or null."""
        for key, value in (self.model_extra or {}).items():
            if len(key) > 100:
                raise ValueError(f"{key[:40]}…: expected an attribute name of at most 100 characters")
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (int, float)):
                if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_EXTRA_NUMBER:
                    raise ValueError(f"{key}: expected a finite number below {MAX_EXTRA_NUMBER:.0e}, found "
                                     f"{'a larger one' if math.isfinite(value) else 'NaN or infinity'}")
                continue
            if isinstance(value, str):
                if len(value) > MAX_EXTRA_TEXT:
                    raise ValueError(f"{key}: expected text of at most {MAX_EXTRA_TEXT} characters, found {len(value)}")
                continue
            raise ValueError(f"{key}: expected a string, number, boolean or null, found {type(value).__name__}")
        return self

    def attributes(self) -> dict[str, Any]:
        """The extra profile attributes, text stripped as the export contract does."""
        return {k: _clean_text(v) if isinstance(v, str) else v for k, v in (self.model_extra or {}).items()}


class ActivityIn(BaseModel):
    """One thing the lead did. Activities at or after ``as_of`` are ignored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_ACTIVITY]})

    occurred_at: datetime = Field(description="When it happened (ISO 8601; naive means UTC; dd.mm.yyyy with "
                                  "LEADSCORE_DATE_FORMAT=de). May be before created_at (imported history).")
    activity_type: str = Field(min_length=1, max_length=100, description="e.g. email_click, pricing_page_view, demo_request.")
    channel: str | None = Field(None, max_length=100, description="e.g. email, web, event.")
    campaign: str | None = Field(None, max_length=300, description="Campaign name.")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _occurred_read(cls, value: object) -> object:
        return read_date(value, "occurred_at")

    @field_validator("occurred_at")
    @classmethod
    def _occurred_in_range(cls, value: datetime) -> datetime:
        return naive_utc(value, "occurred_at")

    @field_validator("activity_type")
    @classmethod
    def _type_lower(cls, value: str) -> str:
        text = value.strip().lower()
        if not text:
            raise ValueError("activity_type: expected an activity type, found only spaces")
        return text

    @field_validator("channel", "campaign")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return _clean_text(value)


class LeadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead: LeadIn = Field(description="The lead's profile.")
    activities: list[ActivityIn] = Field(default_factory=list, max_length=10_000, description="The lead's activity log.")


class ScoreRequest(BaseModel):
    """The body of ``POST /score``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"leads": [{"lead": EXAMPLE_LEAD, "activities": [EXAMPLE_ACTIVITY]}], "top_k": 3, "language": "en"},
    ]})

    leads: list[LeadRequest] = Field(min_length=1, max_length=1000, description="1 to 1,000 leads, each with its activity log.")
    as_of: datetime | None = Field(None, description="Score as of this moment (ISO 8601; naive means UTC); default now. "
                                   "Not before any lead's created_at.")
    top_k: int = Field(3, ge=0, le=20, description="How many positive and how many negative reasons per lead (a JSON integer).")
    language: Literal["en", "de"] = Field("en", description="Language of reasons and recommendation.")
    what_if: bool = Field(False, description="For leads below the sales threshold, the levers (actions, BANT answers to confirm) and the fewest actions that would "
                          "lift them over it (model only; ~20 ms per lead).")

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of_read(cls, value: object) -> object:
        return read_date(value, "as_of")

    @field_validator("as_of")
    @classmethod
    def _as_of_in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else naive_utc(value, "as_of")

    @field_validator("top_k", mode="before")
    @classmethod
    def _top_k_integer(cls, value: object) -> object:
        # Lax pydantic would take "3" and true; an integration sending those has a bug worth hearing of.
        if isinstance(value, (bool, str)):
            kind = "a boolean" if isinstance(value, bool) else "text"
            raise ValueError(f"top_k: expected an integer from 0 to 20 (a JSON number), found {kind}")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> "ScoreRequest":
        seen: dict[str, int] = {}
        for i, item in enumerate(self.leads):
            if item.lead.lead_id in seen:
                raise ValueError(f"leads[{i}].lead.lead_id: expected unique ids, found the id of leads[{seen[item.lead.lead_id]}] again")
            seen[item.lead.lead_id] = i
        return self

    @model_validator(mode="after")
    def _created_by_as_of(self) -> "ScoreRequest":
        """A lead is not scored before it existed: its age would be negative. (Without as_of, now is
        the moment, and created_at later than now is refused by the field itself.)"""
        if self.as_of is None:
            return self
        late = [(i, item.lead) for i, item in enumerate(self.leads) if item.lead.created_at > self.as_of]
        if late:
            shown = ", ".join(f"leads[{i}].lead.created_at" for i, _ in late[:5])
            more = f" and {len(late) - 5} more" if len(late) > 5 else ""
            raise ValueError(f"as_of: expected a time at or after every lead's created_at (a lead cannot be scored "
                             f"before it existed), found as_of before {shown}{more}")
        return self


class CardRequest(LeadRequest):
    """A lead pasted into the card form: scored, recorded and shown as a card."""

    language: Literal["en", "de"] = Field("en", description="Language of the card.")


class ReasonOut(BaseModel):
    feature: str = Field(description="The business signal, e.g. pricing_page_view (all its time windows summed) or seniority.")
    value: str | float | None = Field(description="The value the sentence describes.")
    effect: float = Field(description="Push on the score: log-odds for the model, points for the rules; > 0 raises it.")
    text: str = Field(description="A sentence a sales rep can read, in the requested language.")
    group: Literal["fit", "interest"] | None = Field(None, description="fit: who the lead is; interest: what it did.")


class LeverOut(BaseModel):
    """One lever someone can pull, and what the model says it alone would reach."""

    # from_attributes: the core hands over models.decision.Lever dataclasses as they are
    model_config = ConfigDict(from_attributes=True)

    kind: Literal["action", "confirm"] = Field(description="action: one more activity marketing can invite and the lead "
                                               "can take; confirm: a BANT answer the rep can confirm in a call.")
    name: str = Field(description="The activity type (action) or the profile field (confirm), e.g. demo_request, "
                      "budget_confirmed.", examples=["budget_confirmed"])
    value: str | None = Field(None, description="For confirm: the answer tried (explain.confirmable), e.g. 'yes'.")
    text: str = Field(description="The lever in the requested language.", examples=["Budget im Gespräch bestätigen: ja"])
    probability: float = Field(ge=0, le=1, description="The model's probability for the lead with this lever alone.")
    score: int = Field(ge=1, le=99, description="That probability as a 1–99 score.")
    grade: Literal["A", "B", "C", "D"] = Field(description="The grade that probability gets from the model's cut-offs.")


class WhatIfOut(BaseModel):
    """What would change it: levers one at a time, and the smallest action set over the sales threshold."""

    actions: dict[str, int] = Field(description="The smallest action set over the sales threshold: activity type → how "
                                    "many more, e.g. {\"demo_request\": 1}; {} when no set of a few actions crosses.")
    text: str | None = Field(description="Those actions in the requested language, e.g. '1× demo request + 2× pricing "
                             "page visit'; null when none cross.")
    probability: float | None = Field(ge=0, le=1, description="The model's probability with those actions.")
    score: int | None = Field(ge=1, le=99)
    grade: Literal["A", "B", "C", "D"] | None = Field(None, description="The grade with those actions.")
    levers: list[LeverOut] = Field(default_factory=list, description="Each lever alone that raises the score by at least "
                                   "a point, best first: actions marketing can invite, BANT answers the rep can confirm. "
                                   "Never fixed facts (company size, industry, title, the lead's age).")


class AccountOut(BaseModel):
    """The lead's account, rolled up over the leads of that account in the same request."""

    key: str = Field(description="The account: the company e-mail domain, else the normalised company name.")
    lead_ids: list[str] = Field(description="The account's leads in this request, most probable first.")
    n_leads: int
    n_engaged: int = Field(description="Leads with an interest activity in the last 90 days before as_of.")
    probability: float = Field(ge=0, le=1, description="Noisy-OR of the leads' probabilities: the chance that at "
                               "least one converts, assuming independence (overstates when they are correlated).")
    score: int = Field(ge=1, le=99)
    best_lead_id: str
    best_lead_score: int
    roles_covered: list[str] = Field(description="Buying-centre roles of engaged leads: decision_maker, budget_holder, "
                                     "user, influencer.")
    roles_missing: list[str] = Field(description="Of decision_maker, budget_holder and user, the roles nobody engaged holds.")
    coverage_text: str = Field(description="The coverage as a sentence in the requested language.")


class ScoreOut(BaseModel):
    lead_id: str
    status: Literal["scored", "not_scored"] = Field("scored", description="not_scored: see not_scored_reason.")
    not_scored_reason: str | None = Field(None, description="Why the lead was not scored (it objected to profiling).")
    probability: float | None = Field(None, ge=0, le=1, description="Probability that the lead becomes a won deal within the horizon.")
    score: int | None = Field(None, ge=1, le=99, description="The probability as a 1–99 score.")
    grade: Literal["A", "B", "C", "D"] | None = Field(None, description="A best … D weakest, from cut-offs stored with the scorer.")
    reasons: list[ReasonOut] = Field(default_factory=list, description="Strongest reasons first.")
    scorer: Literal["model", "rules"] | None = Field(None, description="Which scorer answered.")
    model_version: str | None = Field(None, description="Registry version of the model, or rules:<version>.")
    fallback_reason: str | None = Field(None, description="Why the rules answered instead of the model; null otherwise.")
    fit_grade: Literal["A", "B", "C", "D"] | None = Field(None, description="Fit (who the lead is), A best … D.")
    interest_level: int | None = Field(None, ge=1, le=4, description="Interest (what it did), 1 highest … 4.")
    matrix_cell: str | None = Field(None, description="The fit × interest grid cell, A1 … D4.")
    recommendation: Literal["hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention"] | None = Field(
        None, description="What the 4-field matrix suggests. Advice for people: nothing is disqualified automatically.")
    recommendation_text: str | None = Field(None, description="The recommendation in the requested language.")
    sales_ready: bool = Field(False, description="At or above the sales (SQL) threshold stored with the scorer.")
    what_if: WhatIfOut | None = Field(
        None, description="For a lead below the sales threshold (when what_if was asked): the levers that raise its score, each with score and grade, and the fewest actions that would lift it over.")
    previous_score: int | None = Field(None, ge=1, le=99, description="The lead's previous score in the ledger, if any.")
    score_change: int | None = Field(None, description="score − previous_score.")
    trend: Literal["improving", "declining", "steady"] | None = Field(
        None, description=f"improving / declining when the score moved by at least {TREND_POINTS} points since the previous one.")
    warnings: list[str] = Field(default_factory=list, description="Input the scorer could not use: unknown categories "
                                "(scored as missing) and unknown activity types (ignored).")
    account: AccountOut | None = Field(None, description="The lead's account over the leads of this request (send an "
                                       "account's leads together); null when the lead has no company domain or name.")


class HistoryEntryOut(BaseModel):
    id: int
    scored_at: datetime
    as_of: datetime
    scorer: Literal["model", "rules"]
    model_version: str | None
    probability: float
    score: int
    grade: str
    fit_grade: str | None
    interest_level: int | None
    matrix_cell: str | None
    reasons: list[ReasonOut]


class DriverOut(BaseModel):
    signal: str
    old_value: str | float | None
    new_value: str | float | None
    effect: float = Field(description="Log-odds moved by this signal.")
    text: str


class ChangeOut(BaseModel):
    from_id: int
    to_id: int
    old_score: int
    new_score: int
    total: int = Field(description="new_score − old_score.")
    data_change: int | None = Field(description="Points that moved because the lead's data changed.")
    model_change: int | None = Field(description="Points that moved because the model version changed.")
    old_model_version: str | None
    new_model_version: str | None
    decomposed: bool
    data_drivers: list[DriverOut]
    model_drivers: list[DriverOut]
    text: str
    notes: list[str]


class HistoryOut(BaseModel):
    lead_id: str
    entries: list[HistoryEntryOut] = Field(description="Oldest first.")
    change: ChangeOut | None = Field(None, description="Why the last score differs from the one before it.")


class CardLinkOut(BaseModel):
    url: str = Field(description="Path and signed query of the lead card, to embed in an iframe.")
    expires_at: datetime


class MetadataOut(BaseModel):
    scorer: Literal["model", "rules"]
    model_version: str | None
    model_origin: str | None = Field(description="registry, or cache (and why) when the registry was unreachable.")
    model_sha256: str | None
    fallback_reason: str | None
    features: list[dict] = Field(description="Name, group (fit/interest) and kind of every model input.")
    thresholds: dict = Field(description="Grade cut-offs and the sales (SQL) threshold on the probability.")
    training_window: dict = Field(description="The data the model learned from.")
    rules_version: str
    deadline_ms: int
    limits: dict = Field(description="What one request may ask of a worker (the LEADSCORE_* settings): "
                         "max_request_bytes, max_request_activities, max_what_if_leads, max_in_flight, "
                         "body_timeout_s.")
    ledger: str = Field(description="Ledger backend (password masked).")
