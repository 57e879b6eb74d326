"""The BentoML service the CRM calls: the champion model, with the SLA rules as fallback.

BentoML runs it (workers, ``/livez``, ``/readyz``, ``bentoml build``); its routes are
a FastAPI app mounted into the service, because a CRM integration needs what ``@bentoml.api``
does not give: GET routes (history, lead card), 422 errors that name the field, 413/415/503 from
one gate in front of every route, and HTML for the card. Each route is a few lines over
``serving.core.ScoringCore``. ``/metrics`` is the app's own, behind the gate: BentoML's is open and
labels requests by raw path (lead ids), so it is switched off.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Literal

import bentoml
from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import TypeAdapter

from leadscore.config.settings import get_settings
from leadscore.features.contract import PERSONAL_COLUMNS
from leadscore.serving.core import ScoringCore, mlflow_fails_fast, settle_heap
from leadscore.serving.schemas import (
    CardLinkOut,
    CardRequest,
    ChangeOut,
    HistoryEntryOut,
    HistoryOut,
    LeadIn,
    MetadataOut,
    ScoreOut,
    ScoreRequest,
)
from leadscore.serving.admission import Admission, install_protocol, worker_count
from leadscore.serving.request_timeout import TRAFFIC_TIMEOUT_S, replace_bentoml_timeout
from leadscore.serving.security import METRICS_PATH, Gate, Metrics, card_link, configure_logging

ERRORS = {
    401: {"description": "Missing or invalid API key."},
    413: {"description": "Request body too large."},
    415: {"description": "Content type other than application/json."},
    422: {"description": "Invalid input; the message names the field."},
    503: {"description": "Over capacity; retry after the Retry-After header's seconds."},
}
_SCORES = TypeAdapter(list[ScoreOut])
LeadId = Path(min_length=1, max_length=200, description="The CRM's id of the lead, percent-encoded; it may "
              "hold any character, `/` included (`%2F` or `/`: both are the same id).")
Lang = Query("en", description="Language of texts.")

app = FastAPI(
    title="leadscore", version="1",
    description="Predictive lead scores with reasons. Every route needs `Authorization: Bearer <key>`; "
    "the health routes /livez and /readyz are open.",
    # Declares the scheme in the OpenAPI spec; the gate (serving.security) does the checking.
    dependencies=[Depends(HTTPBearer(auto_error=False, description="An API key from LEADSCORE_API_KEYS."))],
)
_core: ScoringCore | None = None
_metrics = Metrics()
_MAX_SCRUBBED = 5_000


@app.exception_handler(RequestValidationError)
async def _invalid(request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each field and what it expects; the refused input is never echoed (it may be NaN,
    huge, or personal data a CRM mapped to the wrong field): no ``input`` or ``ctx``, and any text
    of the input that a message still quotes is cut out of it."""
    errors = [{"loc": [str(p)[:100] if isinstance(p, str) else p for p in e.get("loc", ())],
               "msg": _without_input(str(e.get("msg", "")), e.get("input"))[:500], "type": e.get("type", "")}
              for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def _without_input(msg: str, value: object) -> str:
    """``msg`` with every text or number of ``value`` (walked to at most _MAX_SCRUBBED leaves) replaced by …"""
    leaves: list[str] = []
    stack = [value]
    while stack and len(leaves) < _MAX_SCRUBBED:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
            text = str(item).strip()
            if len(text) >= 3:  # shorter would also hit the message's own words
                leaves.append(text)
    for text in sorted(set(leaves), key=len, reverse=True):
        msg = msg.replace(text, "…")
    return msg


# The settings that bound one request, as /metadata lists them for integrators.
METADATA_LIMITS = ("max_request_bytes", "max_request_activities", "max_what_if_leads", "max_in_flight", "body_timeout_s")


def _settings_gate():
    return _core.settings if _core is not None else get_settings()


app.add_middleware(
    Gate,
    keys=lambda: _settings_gate().keys(),
    secret=lambda: _core.secret if _core is not None else b"",
    max_bytes=lambda: _settings_gate().max_request_bytes,
    routes=lambda: app.router.routes,
    metrics_keys=lambda: _settings_gate().metrics_key_list(),
    metrics=_metrics,
)


def _known_attributes(core: ScoringCore) -> set[str]:
    known = set(LeadIn.model_fields) | set(PERSONAL_COLUMNS) | set(core.rules.spec.profile_columns)
    if core.model is not None:
        # A column the team left out (features.exclude) is still sent by the CRM: accepted, never used.
        known |= set(core.model.spec.profile_columns) | set(core.model.spec.excluded or {})
    return known


def _reject_unknown_fields(core: ScoringCore, leads, prefix: tuple) -> None:
    """422 for profile attributes no scorer of this worker knows, while the model serves. While the
    rules answer for a missing or refused model, the attributes that model read are unknown to
    every scorer here, yet they are what the CRM sends: they are accepted and each answer lists
    them in its warnings (``ScoringCore.score``), so the fallback answers instead of turning every
    request into a 422."""
    if core.model is None:
        return
    known = _known_attributes(core)
    errors = [
        {"type": "extra_forbidden", "loc": (*prefix, i, "lead", key), "input": None,
         "msg": f"unknown field '{key[:60]}'; expected one of: {', '.join(sorted(known))}"}
        for i, item in enumerate(leads) for key in (item.lead.model_extra or {}) if key not in known
    ]
    if errors:
        raise RequestValidationError(errors)


def _refuse_too_much_work(core: ScoringCore, leads, what_if: bool, where: tuple) -> None:
    """422 for a request over the caps on the work it may cause (LEADSCORE_MAX_REQUEST_ACTIVITIES,
    LEADSCORE_MAX_WHAT_IF_LEADS), before anything is scored; ``where`` locates the activities. The
    message gives counts, never a lead's values."""
    settings, errors = core.settings, []
    found = sum(len(item.activities) for item in leads)
    if found > settings.max_request_activities:
        errors.append({"type": "too_long", "loc": where, "input": None,
                       "msg": f"activities: expected at most {settings.max_request_activities} over all leads of one "
                              f"request (LEADSCORE_MAX_REQUEST_ACTIVITIES), found {found} in {len(leads)} "
                              f"lead{'' if len(leads) == 1 else 's'}; send fewer leads per request"})
    if what_if and len(leads) > settings.max_what_if_leads:
        errors.append({"type": "too_long", "loc": ("body", "what_if"), "input": None,
                       "msg": f"what_if: expected at most {settings.max_what_if_leads} leads in a request with "
                              f"what_if true (LEADSCORE_MAX_WHAT_IF_LEADS), found {len(leads)}; send fewer leads "
                              f"per request, or what_if false"})
    if errors:
        raise RequestValidationError(errors)


@bentoml.service(
    name="leadscore",
    # The deadline answers with the rules long before this; it only bounds a stuck worker.
    traffic={"timeout": TRAFFIC_TIMEOUT_S},
    workers=worker_count(),
    # BentoML's access log would print lead ids in paths; the gate logs pseudonymised lines instead.
    logging={"access": {"enabled": False}},
    # BentoML's /metrics is open to anyone and labels requests by raw path (a series per lead id);
    # the app's own /metrics, behind the gate, replaces it (serving.security.Metrics).
    metrics={"enabled": False},
)
@bentoml.asgi_app(app, path="/")
class LeadScoring:
    """Loads the champion once; every request is answered by it or, when it cannot, by the rules."""

    def __init__(self) -> None:
        global _core
        configure_logging()
        mlflow_fails_fast()
        self.core = ScoringCore(get_settings())
        _core = self.core
        settle_heap()

    def __is_ready__(self) -> bool:
        return self.core.ready

    @app.post("/score", response_model=list[ScoreOut], responses=ERRORS)
    async def score(self, body: ScoreRequest) -> Response:
        """Probability, 1–99 score, grade A–D, reasons, fit × interest, recommendation, trend and
        warnings per lead, in request order. A lead with ``do_not_profile`` is not scored."""
        _reject_unknown_fields(self.core, body.leads, ("body", "leads"))
        _refuse_too_much_work(self.core, body.leads, body.what_if, ("body", "leads"))
        scored = await self.core.score(body)
        _metrics.count_scores([(s.out.scorer, s.out.fallback_reason) for s in scored])
        # Built by pydantic's serializer directly: FastAPI would validate the response once more.
        return Response(_SCORES.dump_json([s.out for s in scored]), media_type="application/json")

    @app.post("/reload", responses=ERRORS)
    def reload(self) -> dict:
        """Load the registry's current champion (after `leadscore promote` or `rollback`) without a
        restart; if it cannot be loaded, the service keeps what it had and says why."""
        result = self.core.reload()
        if result["changed"]:
            settle_heap()  # the replaced model collected, the new one frozen
        return result

    @app.get("/metadata", response_model=MetadataOut, responses=ERRORS)
    def metadata(self) -> MetadataOut:
        """What answers: model version and origin, its inputs, thresholds and training window."""
        core, model = self.core, self.core.model
        info = model.info if model else {}
        return MetadataOut(
            scorer="model" if model else "rules",
            model_version=model.version if model else None,
            model_origin=model.origin if model else None,
            model_sha256=model.digest if model else None,
            fallback_reason=core.fallback_reason,
            features=[{"name": f.name, "group": f.group, "kind": f.kind} for f in (model or core.rules).spec.features],
            thresholds={**model.grades, "sales_ready": model.sales_ready} if model else
            {"grades_points": core.rules.config.grades.model_dump(), "sql_points": core.rules.config.thresholds.sql},
            training_window={k: info[k] for k in ("train_period", "calibration_period", "test_start", "data_end",
                                                  "train_rows", "won_deals", "leads") if k in info},
            rules_version=core.rules.version,
            deadline_ms=core.settings.deadline_ms,
            limits={name: getattr(core.settings, name) for name in METADATA_LIMITS},
            ledger=core.ledger.describe(),
        )

    @app.get(METRICS_PATH, include_in_schema=False)
    def metrics(self) -> Response:
        """Prometheus metrics of this service instance (API key or LEADSCORE_METRICS_KEYS)."""
        content, kind = _metrics.render()
        return Response(content, media_type=kind)

    @app.get("/leads/{lead_id:path}/history", response_model=HistoryOut, responses={**ERRORS, 404: {"description": "No scores."}})
    def history(self, lead_id: str = LeadId, limit: int = Query(100, ge=1, le=1000),
                lang: Literal["en", "de"] = Lang) -> HistoryOut:
        """The lead's served scores, oldest first, and why the last one differs from the one before."""
        entries = self._entries(lead_id, limit)
        change = self._change(entries[-2], entries[-1], lang) if len(entries) >= 2 else None
        return HistoryOut(lead_id=lead_id, entries=[_entry_out(e) for e in entries], change=change)

    @app.get("/leads/{lead_id:path}/change", response_model=ChangeOut, responses={**ERRORS, 404: {"description": "No such scores."}})
    def change(self, lead_id: str = LeadId, from_id: int | None = Query(None, ge=1), to_id: int | None = Query(None, ge=1),
               lang: Literal["en", "de"] = Lang) -> ChangeOut:
        """Why two of the lead's scores differ (default: the last two): what moved because the
        lead's data changed, and what moved because the model version changed."""
        entries = self._entries(lead_id, 1000)
        by_id = {e.id: e for e in entries}
        old = by_id.get(from_id) if from_id else (entries[-2] if len(entries) >= 2 else None)
        new = by_id.get(to_id) if to_id else entries[-1]
        if old is None or new is None:
            raise HTTPException(404, f"lead {lead_id!r}: expected two recorded scores"
                                f"{' with ids ' + str(from_id) + ', ' + str(to_id) if from_id or to_id else ''}, found {len(entries)}")
        return self._change(old, new, lang)

    @app.post("/leads/{lead_id:path}/card-link", response_model=CardLinkOut, responses=ERRORS)
    def card_link(self, lead_id: str = LeadId, lang: Literal["en", "de"] = Lang) -> CardLinkOut:
        """A signed, expiring URL of the lead card for an iframe (an iframe cannot send the key)."""
        expires = int(time.time()) + self.core.settings.card_link_ttl_s
        url = card_link(self.core.secret, lead_id, expires) + f"&lang={lang}"
        return CardLinkOut(url=url, expires_at=datetime.fromtimestamp(expires, timezone.utc).replace(tzinfo=None))

    @app.get("/leads/{lead_id:path}/card", response_class=HTMLResponse, responses=ERRORS)
    def card(self, lead_id: str = LeadId, lang: Literal["en", "de"] = Lang) -> HTMLResponse:
        """The lead card: score, grade, fit × interest, reasons, trend and what would change it (HTML)."""
        from leadscore.serving.cards import card_from_history, no_score_page

        entries = self._entries(lead_id, 100, missing_ok=True)
        if not entries:
            return _html(no_score_page(lead_id, lang), 404, self.core)
        return _html(card_from_history(self.core, lead_id, entries, lang), 200, self.core)

    @app.get("/card", response_class=HTMLResponse, responses=ERRORS)
    def card_form(self, lang: Literal["en", "de"] = Lang) -> HTMLResponse:
        """A form to paste a lead (the API's lead JSON) and see its card."""
        from leadscore.serving.card import render_form

        return _html(render_form("/card", lang), 200, self.core)

    @app.post("/card", response_class=HTMLResponse, responses=ERRORS)
    async def card_for_lead(self, body: CardRequest) -> HTMLResponse:
        """Score a pasted lead (recorded like any score) and return its card."""
        from leadscore.serving.cards import card_from_scored

        _reject_unknown_fields(self.core, [body], ("body",))
        _refuse_too_much_work(self.core, [body], False, ("body", "activities"))  # one lead: within any what-if cap
        request = ScoreRequest(leads=[body], language=body.language, what_if=True)
        scored = (await self.core.score(request))[0]
        entries = self._entries(body.lead.lead_id, 100, missing_ok=True)
        return _html(card_from_scored(scored, entries, body.language), 200, self.core)

    # --- helpers

    def _entries(self, lead_id: str, limit: int, missing_ok: bool = False):
        from leadscore.serving.ledger import LedgerError

        try:
            entries = self.core.history(lead_id, limit)
        except LedgerError as exc:
            raise HTTPException(503, f"the score ledger is unavailable: {str(exc)[:200]}", headers={"Retry-After": "5"}) from None
        if not entries and not missing_ok:
            raise HTTPException(404, f"lead {lead_id[:60]!r}: no recorded scores")
        return entries

    def _change(self, old, new, lang: str) -> ChangeOut:
        from leadscore.models.change import explain_change

        found = explain_change(dataclasses.asdict(old), dataclasses.asdict(new), self.core.model_for, lang=lang)
        return ChangeOut(from_id=old.id, to_id=new.id, **{
            k: v for k, v in dataclasses.asdict(found).items() if k in ChangeOut.model_fields})


def _entry_out(e) -> HistoryEntryOut:
    return HistoryEntryOut(**{k: v for k, v in dataclasses.asdict(e).items() if k in HistoryEntryOut.model_fields})


def _html(page: str, status: int, core: ScoringCore) -> HTMLResponse:
    # The card is made to sit in a CRM's iframe: only the configured CRM origins may frame it.
    return HTMLResponse(page, status_code=status, headers={
        "Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                                   f"connect-src 'self'; img-src data:; frame-ancestors {core.settings.card_frame_ancestors}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    })


# --- admission, outside everything BentoML puts in front of the app
#
# BentoML builds the ASGI app a worker serves in ``Service.to_asgi`` (OpenTelemetry, its timeout and
# context middlewares, then the mounted FastAPI app with the gate). Shedding must happen before all
# of that, so the service object's ``to_asgi`` wraps the result in ``Admission``. BentoML's Service is
# a slotted attrs class, so the method is changed by giving this one object a subclass that adds no
# state (``__slots__ = ()``); ``tests/serving/test_admission.py`` checks that a worker's app is it.


class _AdmittedService(type(LeadScoring)):
    __slots__ = ()

    def to_asgi(self, is_main: bool = True):
        install_protocol()  # this worker's uvicorn sheds before an ASGI task exists (serving.admission)
        served = super().to_asgi(is_main)
        replace_bentoml_timeout(served)  # BentoML's keeps every request alive for its timeout (serving.request_timeout)
        return Admission(served,
                         max_in_flight=lambda: _settings_gate().max_in_flight,
                         max_bytes=lambda: _settings_gate().max_request_bytes,
                         body_timeout_s=lambda: _settings_gate().body_timeout_s,
                         metrics=_metrics)


LeadScoring.__class__ = _AdmittedService
