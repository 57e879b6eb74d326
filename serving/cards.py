"""The lead card's data: from the ledger (``GET /leads/{id}/card``) or a freshly scored lead (``POST /card``).

Reasons are phrased again in the card's language from the recorded feature values by the very
scorer version that gave the score (the model's exact SHAP values, or the rules' points), so a
German rep sees German reasons for a score first served in English. When that version cannot be
loaded any more, the recorded sentences are shown as they were served.
"""

from __future__ import annotations

import pandas as pd

from leadscore.models.accounts import account_score, coverage_sentence
from leadscore.models.change import encode_raw
from leadscore.models.decision import LeadScore, decide, matrix, score_from_probability
from leadscore.serving.card import CardData, CardLever, CardReason, render_card
from leadscore.serving.core import Scored, ScoringCore
from leadscore.serving.ledger import LedgerEntry, LedgerError

NO_SCORE = {"en": "No score recorded for this lead yet.", "de": "Für diesen Lead ist noch kein Score gespeichert."}


def rephrase(core: ScoringCore, entry: LedgerEntry, lead_id: str, lang: str) -> LeadScore | None:
    """The entry's score re-explained in ``lang`` by the scorer version that gave it (None if gone)."""
    try:
        if entry.scorer == "model":
            model = core.model_for(entry.model_version)
            if model is None:
                return None
            contrib = model.contributions(encode_raw([entry.features], model.spec))
            return model._results(contrib, [entry.features], [lead_id], 3, lang)[0]
        if entry.model_version == core.rules.version:
            frame = pd.DataFrame([entry.features], columns=core.rules.spec.names)
            return core.rules.score_frame(frame, [lead_id], top_k=3, lang=lang)[0]
    except Exception:  # noqa: BLE001 — fall back to the sentences as served
        return None
    return None


def card_from_history(core: ScoringCore, lead_id: str, entries: list[LedgerEntry], lang: str) -> str:
    """The card of the lead's latest recorded score, with the trend over its history."""
    last = entries[-1]
    again = rephrase(core, last, lead_id, lang)
    if again is not None:
        reasons = [CardReason(r.text, r.effect, r.group) for r in again.reasons]
    else:
        reasons = [CardReason(r["text"], r["effect"], r.get("group")) for r in last.reasons]
    # The recorded grade and quadrant decide, by the same rule that served them (models.decision).
    quadrant = (matrix(last.fit_grade, int(last.interest_level), 0.0, 0.0)
                if last.fit_grade and last.interest_level else None)
    decision = decide(last.grade, quadrant, lang)
    data = CardData(
        lead_id=lead_id, score=last.score, probability=last.probability, grade=last.grade,
        sales_ready=decision.sales_ready, fit_grade=last.fit_grade, interest_level=last.interest_level,
        matrix_cell=last.matrix_cell, recommendation_text=decision.recommendation_text, reasons=reasons,
        history=[(e.scored_at, e.score) for e in entries],
        score_change=last.score - entries[-2].score if len(entries) >= 2 else None,
        what_if_text=None, what_if_score=None, scorer=last.scorer, model_version=last.model_version,
        fallback_reason=None, as_of=last.as_of, account=account_view(core, last, lang),
        what_if_levers=recorded_levers(core, last, lang), what_if_actions_tried=False,
    )
    return render_card(data, lang)


def recorded_levers(core: ScoringCore, entry: LedgerEntry, lang: str) -> list[CardLever] | None:
    """What the rep can confirm in a call, worked out from a stored model score's recorded feature
    values by the model version that gave it (the ledger keeps no activity history, so actions
    cannot be tried); None when the rules gave the score or that version cannot be loaded."""
    from leadscore.models.whatif import confirm_levers

    if entry.scorer != "model":
        return None
    try:
        model = core.model_for(entry.model_version)
        if model is None:
            return None
        return [CardLever(lv.text, lv.score, lv.grade, lv.kind) for lv in confirm_levers(model, entry.features, lang=lang)]
    except Exception:  # noqa: BLE001 — a card without levers beats no card
        return None


def account_view(core: ScoringCore, entry: LedgerEntry, lang: str) -> tuple[str, int, int, str] | None:
    """The lead's account over everything served for it: the newest score of each of its leads in
    the ledger, rolled up as params.yaml says, and the roles its engaged leads cover."""
    if not entry.account_key:
        return None
    try:
        latest = core.ledger.account_latest(entry.account_key)
    except LedgerError:
        return None
    if not latest:
        return None
    probability = account_score([e.probability for e in latest], core.accounts.rollup, core.accounts.max_leads)
    covered = {role for e in latest for role in (e.roles or [])}
    return (entry.account_key, len(latest), int(score_from_probability([probability])[0]),
            coverage_sentence(covered, lang))


def card_from_scored(scored: Scored, entries: list[LedgerEntry], lang: str) -> str:
    """The card of a lead scored just now (``entries`` already include this score when recorded)."""
    out = scored.out
    if out.status != "scored":
        return render_card(_empty(out.lead_id, out.not_scored_reason), lang)
    history = [(e.scored_at, e.score) for e in entries]
    data = CardData(
        lead_id=out.lead_id, score=out.score, probability=out.probability, grade=out.grade, sales_ready=out.sales_ready,
        fit_grade=out.fit_grade, interest_level=out.interest_level, matrix_cell=out.matrix_cell,
        recommendation_text=out.recommendation_text,
        reasons=[CardReason(r.text, r.effect, r.group) for r in out.reasons],
        history=history, score_change=out.score_change,
        what_if_text=out.what_if.text if out.what_if else None, what_if_score=out.what_if.score if out.what_if else None,
        what_if_grade=out.what_if.grade if out.what_if else None,
        # the model works levers out for every lead below the threshold: no answer means nothing moves it
        what_if_levers=[CardLever(lv.text, lv.score, lv.grade, lv.kind) for lv in out.what_if.levers] if out.what_if
        else [] if out.scorer == "model" else None,
        scorer=out.scorer or "rules", model_version=out.model_version, fallback_reason=out.fallback_reason,
        as_of=entries[-1].as_of if entries else None,
        account=(out.account.key, out.account.n_leads, out.account.score, out.account.coverage_text)
        if out.account else None,
    )
    return render_card(data, lang)


def no_score_page(lead_id: str, lang: str) -> str:
    return render_card(_empty(lead_id, NO_SCORE.get(lang, NO_SCORE["en"])), lang)


def _empty(lead_id: str, why: str | None) -> CardData:
    return CardData(lead_id=lead_id, score=None, probability=None, grade=None, sales_ready=False, fit_grade=None,
                    interest_level=None, matrix_cell=None, recommendation_text=None, reasons=[], history=[],
                    score_change=None, what_if_text=None, what_if_score=None, scorer="model", model_version=None,
                    fallback_reason=None, as_of=None, not_scored_reason=why)
