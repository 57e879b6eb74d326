"""What the API does, without the web framework: score within a deadline, fall back, record, explain.

``ScoringCore`` holds the champion (or nothing), the SLA rules, the ledger and the settings.
Every request is answered: by the model when it passed its check in a child process
(``serving.model_check``: a model that crashes LightGBM or hangs costs the child, not this worker),
loaded, passed its start-up check and answers within the deadline; by the rules otherwise, saying
why in ``models.policy``'s vocabulary (``model_invalid: …``, ``deadline: …``). Model work past its
deadline is abandoned at the next chunk of leads or what-if, not left running. The ledger is best
effort: when it is down, scores are still served and the loss is logged (and not retried for a few
seconds, so a dead database costs one request its timeout, not every request).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from leadscore.config.params import load_params
from leadscore.config.settings import Settings, get_settings
from leadscore.features.catalog import label
from leadscore.features.contract import PERSONAL_COLUMNS
from leadscore.features.online import OnlineFeatures
from leadscore.models.accounts import buying_roles, summarize_accounts
from leadscore.models.decision import LeadScore
from leadscore.models.lgbm import LeadModel
from leadscore.models.policy import fallback, primary_scorer, rule_scorer, scrub
from leadscore.models.rules import RuleScorer
from leadscore.serving import live, model_check
from leadscore.serving.ledger import Ledger, LedgerEntry, LedgerError, pseudonym
from leadscore.serving.schemas import (
    EXAMPLE_ACTIVITY,
    EXAMPLE_LEAD,
    TREND_POINTS,
    AccountOut,
    LeadRequest,
    ScoreOut,
    ScoreRequest,
)

log = logging.getLogger("leadscore.serving")

LEDGER_RETRY_S = 5.0
# Model work checks its request's deadline between chunks of this many leads (~5 ms of scoring;
# a chunk keeps nearly the speed of one batch: 0.15 ms a lead against 0.13 ms for 400, 0.49 ms
# alone) and before each lead's what-if (~7 ms). Past the deadline it stops there, so a request
# the rules answered does not keep a model thread, and the GIL, from the requests after it.
MODEL_CHUNK = 32
DO_NOT_PROFILE = {
    "en": "not scored: the lead objected to profiling (do_not_profile)",
    "de": "nicht bewertet: der Lead hat dem Profiling widersprochen (do_not_profile)",
}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def trend_of(change: int | None) -> str | None:
    if change is None:
        return None
    return "improving" if change >= TREND_POINTS else "declining" if change <= -TREND_POINTS else "steady"


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Abandoned(Exception):
    """The request no longer wants the model's answer (its deadline passed): the work stopped."""


@dataclass
class Scored:
    """One answered lead: what the API returns and what the ledger keeps."""

    out: ScoreOut
    result: LeadScore | None = None
    features: dict = field(default_factory=dict)
    roles: list[str] = field(default_factory=list)  # buying-centre roles, when the lead is engaged


def _not_read(lead, reads: frozenset[str], lang: str) -> list[str]:
    """Warnings for the profile attributes of ``lead`` that the rules, answering without a model, do
    not read (the service accepts them then; see ``service._reject_unknown_fields``)."""
    ignored = sorted(k for k in (lead.model_extra or {}) if k not in reads and k not in PERSONAL_COLUMNS)
    if lang == "de":
        return [f"{label(k[:60], 'de')}: von den SLA-Regeln nicht gelesen (sie antworten, solange kein Modell bereitsteht)"
                for k in ignored]
    return [f"{k[:60]}: not read by the SLA rules (they answer while no model serves)" for k in ignored]


def settle_heap() -> None:
    """Leave what is loaded now (libraries, the rules, the model) out of every later garbage collection.

    A full collection walks every tracked object while holding the GIL: with a model and its
    libraries loaded (~0.5 million objects) that stopped the event loop for ~0.2 s every few seconds
    under load, answers and 503s alike. ``gc.freeze`` moves them to a generation the collector skips;
    objects made later, per request, are collected as before. The service calls it when the worker
    has loaded and checked its scorers, and after a reload that changed the model: what was frozen
    and has become garbage since (the replaced model and its booster, held in reference cycles) is
    unfrozen and collected first, once, instead of staying in memory for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ScoringCore:
    """The scorers, the ledger and the policy between them; one per worker process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        params = load_params(self.settings.params_path)
        self.rules: RuleScorer = rule_scorer(params.features, self.settings)
        self.rules_online = OnlineFeatures(self.rules.spec)
        self.free_mail = frozenset(d.lower() for d in params.features.free_mail_domains)
        self.accounts = params.accounts
        self.sales_types = frozenset(self.rules.spec.sales_activity_types)
        scorer, self.fallback_reason = primary_scorer(params.features, self.settings, check=_check_folder)
        self.model: LeadModel | None = _served(scorer)
        # Older model versions behind ledger entries, loaded on demand for "why did it change".
        self._old_models: dict[str, LeadModel | None] = {}
        self.secret = self._secret()
        self.ledger = Ledger(self.settings.ledger(), timeout_s=1.0)
        self._ledger_down_until = 0.0
        self._ledger_lost = 0
        # The model runs on its own threads so that a slow or stuck model cannot block the rules.
        self._model_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model")
        self._rules_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rules")
        self._lock = threading.Lock()
        self.ready = False
        self.verify()

    # --- start-up

    def _secret(self) -> bytes:
        if not self.settings.keys():
            raise RuntimeError("LEADSCORE_API_KEYS is not set: every request would be refused "
                               "(run `leadscore keygen` for a demo key)")
        secret = self.settings.pseudonym_secret()
        if secret is None:
            raise RuntimeError("LEADSCORE_PSEUDONYM_KEY is not set: lead ids in the ledger and logs are pseudonymised "
                               "with it (run `leadscore keygen` for a demo key)")
        return secret

    def verify(self) -> None:
        """Score a test lead with the rules and the model; a model that fails is dropped (the rules
        answer, saying why). Ready once the rules pass."""
        results, _ = live.score_rules(self.rules, self.rules_online, *_test_lead(), 3, "en")
        _check(results[0], "rules")
        if self.model is not None:
            why = _model_fails(self.model)
            if why:
                self.model, self.fallback_reason = None, why
        self.ready = True
        if self.model is not None:
            log.info("serving", extra={"scorer": "model", "model_version": self.model.version,
                                       "origin": self.model.origin, "ledger": self.ledger.describe()})
        else:
            log.warning("serving", extra={"scorer": "rules", "rules_version": self.rules.version,
                                          "reason": self.fallback_reason, "ledger": self.ledger.describe()})

    @property
    def profile_reads(self) -> frozenset[str]:
        """The extra attributes a scorer reads; every other one a request carries is dropped on arrival."""
        model = self.model
        return frozenset(self.rules.spec.profile_columns) | frozenset(model.spec.profile_columns if model else ())

    def reload(self) -> dict:
        """Load the registry's current champion; keep the current model if the new one cannot load
        or fails the test lead."""
        params = load_params(self.settings.params_path)
        before = self.model.version if self.model else None
        scorer, why = primary_scorer(params.features, self.settings, check=_check_folder)
        candidate = _served(scorer)
        if candidate is not None:
            why = _model_fails(candidate)
        if why and self.model is not None:
            log.warning("reload kept the model", extra={"model_version": before, "reason": why})
            return {"scorer": "model", "model_version": before, "changed": False, "reason": why}
        with self._lock:
            self.model, self.fallback_reason = (None, why) if why else (candidate, None)
        after = self.model.version if self.model else None
        log.info("reload", extra={"before": before, "after": after, "reason": self.fallback_reason})
        return {"scorer": "model" if self.model else "rules", "model_version": after or self.rules.version,
                "changed": after != before, "reason": self.fallback_reason}

    # --- scoring

    async def score(self, request: ScoreRequest) -> list[Scored]:
        """Score every lead of a request: model within the deadline, else the rules; then the ledger."""
        as_of = request.as_of or _now()
        as_of_us = live.micros(as_of)
        lang = request.language
        answered: list[Scored | None] = [None] * len(request.leads)
        todo = []
        for i, item in enumerate(request.leads):
            if item.lead.do_not_profile:
                answered[i] = Scored(ScoreOut(lead_id=item.lead.lead_id, status="not_scored",
                                              not_scored_reason=DO_NOT_PROFILE[lang]))
            else:
                todo.append(i)
        if todo:
            reads, serving_model = self.profile_reads, self.model is not None
            leads = [live.inputs(request.leads[i], reads) for i in todo]
            loop = asyncio.get_running_loop()
            scored = await self._score_within_deadline(loop, leads, as_of_us, request.top_k, lang, request.what_if)
            if not serving_model:
                for i, s in zip(todo, scored):
                    s.out.warnings.extend(_not_read(request.leads[i].lead, reads, lang))
            self._add_accounts(request, todo, leads, scored, as_of_us, lang)
            await loop.run_in_executor(self._rules_pool, self._with_ledger, scored, as_of, lang)
            for i, s in zip(todo, scored):
                answered[i] = s
        return [s for s in answered if s is not None]

    def _add_accounts(self, request: ScoreRequest, todo: list[int], leads, scored: list[Scored], as_of_us: int,
                      lang: str) -> None:
        """Each scored lead's account, rolled up over the account's leads in this request."""
        rows = []
        for i, (_, activities), s in zip(todo, leads, scored):
            lead = request.leads[i].lead
            engaged = live.engaged(activities, as_of_us, self.sales_types)
            rows.append({"lead_id": lead.lead_id, "email": lead.email, "company": lead.company,
                         "job_title": lead.job_title, "probability": s.out.probability, "score": s.out.score,
                         "engaged": engaged})
            s.roles = sorted(buying_roles(lead.job_title)) if engaged else []
        summaries = summarize_accounts(rows, self.free_mail, self.accounts.rollup, self.accounts.max_leads, lang=lang)
        by_lead = {lead_id: summary for summary in summaries if summary.key is not None for lead_id in summary.lead_ids}
        for s in scored:
            summary = by_lead.get(s.out.lead_id)
            s.out.account = AccountOut(**summary.to_dict()) if summary is not None else None

    async def _score_within_deadline(self, loop, leads, as_of_us: int, top_k: int, lang: str, what_if: bool) -> list[Scored]:
        model, why = self.model, self.fallback_reason
        if model is not None:
            deadline = self.settings.deadline_ms / 1000
            stop = threading.Event()
            job = loop.run_in_executor(self._model_pool, self._score_model, model, leads, as_of_us, top_k, lang,
                                       what_if, stop)
            try:
                return await asyncio.wait_for(job, timeout=deadline)
            except TimeoutError:
                why = fallback("deadline", f"model version {model.version} did not answer within the "
                                           f"{self.settings.deadline_ms} ms deadline")
            except Exception as exc:  # noqa: BLE001 — the model failing on a request must not fail the request
                why = fallback("model_error", f"model version {model.version} failed on this request: {type(exc).__name__}")
            finally:
                # Cancelling the future stops only a job still queued; a running one stops at its next
                # check. Also when this request's task is cancelled.
                stop.set()
            log.warning("fallback to rules", extra={"reason": why, "leads": len(leads)})
        return await loop.run_in_executor(self._rules_pool, self._score_rules, leads, as_of_us, top_k, lang, why)

    def _score_model(self, model: LeadModel, leads, as_of_us: int, top_k: int, lang: str, what_if: bool,
                     stop: threading.Event) -> list[Scored]:
        """The model's answers, chunk by chunk and what-if by what-if; raises Abandoned, leaving
        the rest undone, once ``stop`` is set."""
        from leadscore.models import whatif

        out: list[Scored] = []
        for start in range(0, len(leads), MODEL_CHUNK):
            chunk = leads[start:start + MODEL_CHUNK]
            _unless_stopped(stop, len(out), len(leads))
            results, raws = live.score_model(model, chunk, as_of_us, top_k, lang)
            for (profile, activities), result, raw in zip(chunk, results, raws):
                if what_if and not result.sales_ready:
                    _unless_stopped(stop, len(out), len(leads))
                    result.what_if = whatif.what_would_change(model, model.online, profile, activities, as_of_us,
                                                              lang=lang)
                warnings = live.warnings_for(model.spec, raw, activities, as_of_us, lang)
                out.append(Scored(_out(result, None, warnings), result, raw))
        return out

    def _score_rules(self, leads, as_of_us: int, top_k: int, lang: str, why: str | None) -> list[Scored]:
        results, raws = live.score_rules(self.rules, self.rules_online, leads, as_of_us, top_k, lang)
        return [Scored(_out(result, why, []), result, raw) for result, raw in zip(results, raws)]

    # --- ledger

    def ledger_available(self) -> bool:
        return time.monotonic() >= self._ledger_down_until

    def _ledger_failed(self, what: str, exc: Exception, lost: int) -> None:
        self._ledger_down_until = time.monotonic() + LEDGER_RETRY_S
        self._ledger_lost += lost
        log.error("ledger unavailable", extra={"during": what, "error": str(exc)[:300], "scores_not_recorded": lost,
                                               "scores_not_recorded_total": self._ledger_lost,
                                               "retry_in_s": LEDGER_RETRY_S})

    def _with_ledger(self, scored: list[Scored], as_of: datetime, lang: str) -> None:
        """Add each lead's previous score and trend, then record the new scores (best effort)."""
        keys = [pseudonym(s.out.lead_id, self.secret) for s in scored]
        if not self.ledger_available():
            self._ledger_lost += len(scored)
            log.error("ledger unavailable", extra={"scores_not_recorded": len(scored),
                                                   "scores_not_recorded_total": self._ledger_lost})
            return
        try:
            previous = self.ledger.latest(keys)
        except LedgerError as exc:
            self._ledger_failed("read", exc, len(scored))
            return
        now = _now()
        entries = []
        for key, s in zip(keys, scored):
            before = previous.get(key)
            if before is not None:
                s.out.previous_score = before.score
                s.out.score_change = s.out.score - before.score
                s.out.trend = trend_of(s.out.score_change)
            r = s.result
            entries.append(LedgerEntry(
                lead_key=key, as_of=as_of, scored_at=now, scorer=r.scorer, model_version=r.model_version,
                probability=r.probability, score=r.score, grade=r.grade,
                reasons=[x.model_dump() for x in s.out.reasons],
                features={k: _finite(v) for k, v in s.features.items() if k != "lead_id"},
                fit_grade=s.out.fit_grade, interest_level=s.out.interest_level, matrix_cell=s.out.matrix_cell,
                lang=lang, account_key=s.out.account.key if s.out.account else None, roles=s.roles,
            ))
        try:
            self.ledger.record(entries)
        except LedgerError as exc:
            self._ledger_failed("write", exc, len(entries))

    def history(self, lead_id: str, limit: int = 100) -> list[LedgerEntry]:
        return self.ledger.history(pseudonym(lead_id, self.secret), limit=limit)

    # --- the models behind old scores, for "why did it change"

    def model_for(self, version: str | None) -> LeadModel | None:
        """The model that gave a ledger entry: the current one, or an older version from the registry
        (cached on disk, checksummed); None for rules or when it cannot be loaded."""
        if not version or version.startswith("rules:"):
            return None
        if self.model is not None and self.model.version == version:
            return self.model
        cache = self._old_models
        if version not in cache:
            from leadscore.models.registry import load_version

            try:
                cache[version] = load_version(self.settings.model_name, version, self.settings, check=_check_folder)
            except Exception as exc:  # noqa: BLE001 — an old model is a courtesy
                log.warning("old model unavailable", extra={"model_version": version, "error": scrub(str(exc))})
                cache[version] = None
        return cache[version]

    def close(self) -> None:
        self._model_pool.shutdown(wait=False, cancel_futures=True)
        self._rules_pool.shutdown(wait=False, cancel_futures=True)
        self.ledger.close()


def _unless_stopped(stop: threading.Event, done: int, total: int) -> None:
    if stop.is_set():
        log.info("model work abandoned", extra={"leads_done": done, "leads_abandoned": total - done})
        raise Abandoned(f"{total - done} of {total} leads abandoned")


def _test_lead() -> tuple[list, int]:
    """The schema's example lead with one activity, as the live scorers take it, and its as_of."""
    example = LeadRequest.model_validate({"lead": {**EXAMPLE_LEAD, "created_at": "2026-01-05T09:00:00"},
                                          "activities": [{**EXAMPLE_ACTIVITY, "occurred_at": "2026-01-06T10:00:00"}]})
    return [live.inputs(example)], live.micros(datetime(2026, 2, 1))


def _check_folder(folder) -> str | None:
    """The load hook: why the model folder is refused by its check in a child process, or None."""
    verdict = model_check.check_folder(folder)
    if verdict.ok:
        log.info("model check passed", extra={"check": verdict.note, "check_s": round(verdict.seconds, 2)})
        return None
    log.error("model check refused the model", extra={"reason": scrub(verdict.reason or ""),
                                                       "check_s": round(verdict.seconds, 2)})
    return verdict.reason or "the check gave no reason"


def _served(scorer) -> LeadModel | None:
    """The model among the scorers, with its origin fit to show (the cache's reason names no URL)."""
    if not isinstance(scorer, LeadModel):
        return None
    scorer.origin = scrub(scorer.origin)
    return scorer


def _model_fails(model: LeadModel) -> str | None:
    """Why ``model`` cannot serve (it raised or gave an impossible answer on the test lead), or None."""
    try:
        results, _ = live.score_model(model, *_test_lead(), 3, "en")
        _check(results[0], "model")
    except Exception as exc:  # noqa: BLE001 — any failure of the model means: rules
        return fallback("model_failed_check", f"model version {model.version} failed its start-up check: {exc}")
    return None


def _check(result: LeadScore, who: str) -> None:
    if not (0.0 <= result.probability <= 1.0) or not math.isfinite(result.probability) or not 1 <= result.score <= 99:
        raise RuntimeError(f"{who} gave probability {result.probability!r}, score {result.score!r} for the example lead")


def _out(result: LeadScore, fallback_reason: str | None, warnings: list[str]) -> ScoreOut:
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
        recommendation=result.recommendation,
        recommendation_text=result.recommendation_text,
        sales_ready=result.sales_ready,
        what_if=result.what_if.__dict__ if result.what_if else None,
        warnings=warnings,
    )


def mlflow_fails_fast() -> None:
    """A tracking server that is down must not hold start-up for minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
