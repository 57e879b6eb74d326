"""The lead card a sales rep sees: one self-contained HTML page per lead, and the paste-a-lead form.

Pure functions from data to HTML; the service wires them to ``GET /leads/{lead_id}/card`` and
``GET /card``. The CRM embeds the page in an iframe on a closed network, so everything is inline:
CSS in a ``<style>``, charts as inline SVG, no fonts, scripts or images from elsewhere. Every text
that comes from data (ids, reasons, recommendation, versions) goes through ``html.escape``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

LANGS = ("en", "de")
GRADES = ("A", "B", "C", "D")
LEVELS = (1, 2, 3, 4)
MAX_REASONS_PER_SIDE = 5

# One dict of label texts per language; the card needs a few dozen, an i18n framework would be overkill.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "lead": "Lead",
        "score": "Lead score",
        "out_of": "1–99",
        "grade": "Grade {g}",
        "ready": "Sales-ready",
        "not_ready": "Not sales-ready yet",
        "probability": "Chance of a won deal: {p}",
        "since_last": "since the last score",
        "unchanged": "unchanged",
        "first_score": "First score",
        "trend": "Score trend: {scores}",
        "matrix": "Fit × interest",
        "fit": "Fit",
        "interest": "Interest",
        "fit_axis": "Fit · A best",
        "interest_axis": "Interest · 1 highest",
        "this_lead": "this lead",
        "no_matrix": "No fit × interest position for this lead.",
        "hand_to_sales": "Hand to sales",
        "keep_nurturing": "Keep nurturing",
        "nurture_as_recommender": "Nurture as recommender",
        "no_further_attention": "No further attention",
        "recommendation": "Recommendation",
        "advice": "Advice for you to decide on: nothing is disqualified automatically.",
        "reasons": "Why this score",
        "raises": "Raises the score",
        "lowers": "Lowers the score",
        "none_raises": "Nothing notable raises it.",
        "none_lowers": "Nothing notable lowers it.",
        "what_if": "What would change it",
        "account": "Account",
        "account_line": "{key}: {n} lead(s) in this view, account score {score}",
        "levers": "Each of these alone would raise the score:",
        "lever_target": "score {s}, grade {g}",
        "what_if_score": "Together, these actions would lift the score to {s} (sales-ready):",
        "what_if_plain": "Together, these actions would make the lead sales-ready:",
        "no_combination": "Even a few of these actions together would not make it sales-ready yet.",
        "nothing_moves": "Nothing marketing or sales can do now would make the lead sales-ready.",
        "confirm_only": "Worked out from the stored score: only what the rep can confirm in a call. "
                        "Score the lead again to see which actions would help.",
        "nothing_to_confirm": "Nothing the rep can confirm in a call would raise the score. "
                              "Score the lead again to see which actions would help.",
        "not_worked_out": "Not worked out for this score: the model suggests levers when it scores the lead.",
        "already_ready": "Already sales-ready: it meets the agreed threshold for a hand-over now.",
        "scorer": "Scorer",
        "scorer_model": "Model",
        "scorer_rules": "Rules (SLA points)",
        "version": "Version",
        "as_of": "As of",
        "fallback": "Scored by the rules (SLA points) instead of the model",
        "not_scored": "Not scored",
        "not_scored_note": "No score is computed for this lead.",
        "do_not_profile": "The lead objected to profiling, so it is not scored.",
        "effect": "effect {e}",
        # the form
        "form_title": "Score a lead",
        "form_intro": 'Paste a lead as JSON — {"lead": {…}, "activities": […]} — and see its card.',
        "form_json": "Lead JSON",
        "form_lang": "Card language",
        "form_submit": "Show card",
        "form_busy": "Scoring …",
        "form_bad_json": "This is not valid JSON:",
        "form_no_lead": 'The JSON needs a "lead" object (and optionally an "activities" list).',
        "form_failed": "The API could not score this lead",
        "form_network": "The API could not be reached:",
        "form_privacy": "The e-mail address is used only for its domain and is not stored.",
    },
    "de": {
        "lead": "Lead",
        "score": "Lead-Score",
        "out_of": "1–99",
        "grade": "Klasse {g}",
        "ready": "Vertriebsbereit",
        "not_ready": "Noch nicht vertriebsbereit",
        "probability": "Chance auf einen Abschluss: {p}",
        "since_last": "seit dem letzten Score",
        "unchanged": "unverändert",
        "first_score": "Erster Score",
        "trend": "Score-Verlauf: {scores}",
        "matrix": "Passung × Interesse",
        "fit": "Passung",
        "interest": "Interesse",
        "fit_axis": "Passung · A am besten",
        "interest_axis": "Interesse · 1 am höchsten",
        "this_lead": "dieser Lead",
        "no_matrix": "Für diesen Lead gibt es keine Position in der Matrix.",
        "hand_to_sales": "An den Vertrieb übergeben",
        "keep_nurturing": "Weiter pflegen",
        "nurture_as_recommender": "Als Empfehlungsgeber pflegen",
        "no_further_attention": "Keine weitere Betreuung",
        "recommendation": "Empfehlung",
        "advice": "Ein Rat – die Entscheidung liegt bei Ihnen: Niemand wird automatisch aussortiert.",
        "reasons": "Warum dieser Score",
        "raises": "Hebt den Score",
        "lowers": "Senkt den Score",
        "none_raises": "Nichts Nennenswertes hebt ihn.",
        "none_lowers": "Nichts Nennenswertes senkt ihn.",
        "what_if": "Was ihn ändern würde",
        "account": "Account",
        "account_line": "{key}: {n} Lead(s) in dieser Ansicht, Account-Score {score}",
        "levers": "Jede dieser Maßnahmen würde den Score schon allein heben:",
        "lever_target": "Score {s}, Klasse {g}",
        "what_if_score": "Zusammen würden diese Aktionen den Score auf {s} heben (vertriebsbereit):",
        "what_if_plain": "Zusammen würden diese Aktionen den Lead vertriebsbereit machen:",
        "no_combination": "Auch einige dieser Aktionen zusammen würden ihn noch nicht vertriebsbereit machen.",
        "nothing_moves": "Nichts, was Marketing oder Vertrieb jetzt tun kann, würde den Lead vertriebsbereit machen.",
        "confirm_only": "Aus dem gespeicherten Score ermittelt: nur, was der Vertrieb im Gespräch bestätigen kann. "
                        "Bewerten Sie den Lead neu, um zu sehen, welche Aktionen helfen würden.",
        "nothing_to_confirm": "Nichts, was der Vertrieb im Gespräch bestätigen kann, würde den Score heben. "
                              "Bewerten Sie den Lead neu, um zu sehen, welche Aktionen helfen würden.",
        "not_worked_out": "Für diesen Score nicht ermittelt: Hebel schlägt das Modell vor, wenn es den Lead bewertet.",
        "already_ready": "Bereits vertriebsbereit: Der Lead erreicht die vereinbarte Schwelle für die Übergabe.",
        "scorer": "Bewertet von",
        "scorer_model": "Modell",
        "scorer_rules": "Regeln (SLA-Punkte)",
        "version": "Version",
        "as_of": "Stand",
        "fallback": "Nach den Regeln (SLA-Punkte) statt vom Modell bewertet",
        "not_scored": "Nicht bewertet",
        "not_scored_note": "Für diesen Lead wird kein Score berechnet.",
        "do_not_profile": "Der Lead hat der Profilbildung widersprochen und wird daher nicht bewertet.",
        "effect": "Wirkung {e}",
        "form_title": "Lead bewerten",
        "form_intro": 'Fügen Sie einen Lead als JSON ein — {"lead": {…}, "activities": […]} — und sehen Sie sich seine Karte an.',
        "form_json": "Lead als JSON",
        "form_lang": "Sprache der Karte",
        "form_submit": "Karte anzeigen",
        "form_busy": "Wird bewertet …",
        "form_bad_json": "Das ist kein gültiges JSON:",
        "form_no_lead": 'Das JSON braucht ein Objekt "lead" (und optional eine Liste "activities").',
        "form_failed": "Die API konnte diesen Lead nicht bewerten",
        "form_network": "Die API war nicht erreichbar:",
        "form_privacy": "Die E-Mail-Adresse wird nur für ihre Domain genutzt und nicht gespeichert.",
    },
}

# Quadrants of the 4-field matrix (DOMAIN.md): fit A/B is high fit, interest 1/2 is high interest.
QUADRANTS: dict[tuple[bool, bool], str] = {
    (True, True): "hand_to_sales",
    (True, False): "keep_nurturing",
    (False, True): "nurture_as_recommender",
    (False, False): "no_further_attention",
}
# quadrant → (cell tint, the lead's cell)
QUADRANT_COLOURS: dict[str, tuple[str, str]] = {
    "hand_to_sales": ("#dcfce7", "#15803d"),
    "keep_nurturing": ("#dbeafe", "#1d4ed8"),
    "nurture_as_recommender": ("#fef3c7", "#b45309"),
    "no_further_attention": ("#eef0f3", "#475569"),
}


@dataclass
class CardReason:
    text: str  # a sentence in the card's language, already phrased
    effect: float  # > 0 raises the score
    group: str | None  # "fit" | "interest" | None


@dataclass
class CardLever:
    """One lever (models.whatif): what to do, already phrased, and what it alone would reach."""

    text: str  # e.g. "1× Demo-Anfrage" or "Budget im Gespräch bestätigen: ja"
    score: int  # 1..99
    grade: str | None  # A..D
    kind: str = "action"  # "action" | "confirm"


@dataclass
class CardData:
    lead_id: str  # the CRM's id (shown to the rep, who already knows it)
    score: int | None  # 1..99; None when not scored (see not_scored_reason)
    probability: float | None
    grade: str | None  # A..D
    sales_ready: bool
    fit_grade: str | None  # A..D (who the lead is)
    interest_level: int | None  # 1 (highest) .. 4
    matrix_cell: str | None  # e.g. "B2"
    recommendation_text: str | None  # already in the card's language
    reasons: list[CardReason]  # strongest first, positive and negative
    history: list[tuple[datetime, int]]  # (scored_at, score) oldest first; may be empty or one point
    score_change: int | None  # score minus previous score, None if no previous
    what_if_text: str | None  # the smallest action set over the threshold, e.g. "1× demo request + 2× pricing page visit"
    what_if_score: int | None  # the score those actions would give
    scorer: str  # "model" | "rules"
    model_version: str | None
    fallback_reason: str | None  # why the rules answered, if they did
    as_of: datetime | None
    not_scored_reason: str | None = None  # e.g. the lead objected to profiling (do_not_profile)
    # The lead's account: (key, leads, account score 1–99, buying-centre coverage sentence), if known.
    account: tuple[str, int, int, str] | None = None
    # What would change it, each lever alone, best first. None: not worked out for this score (the
    # rules answered); []: worked out, and nothing anyone can do moves the lead.
    what_if_levers: list[CardLever] | None = None
    what_if_grade: str | None = None  # the grade the action set (what_if_text) would give
    # False: a stored score, whose activity history is not at hand: only confirmations were tried.
    what_if_actions_tried: bool = True


def render_card(card: CardData, lang: str = "en") -> str:
    """A complete HTML5 document showing one lead's score, position, reasons, trend and next step.

    Labels are in ``lang`` ("en" or "de"); texts inside ``card`` are shown as given (escaped).
    With ``not_scored_reason`` set, the page shows only that the lead is not scored and why.
    """
    t = _labels(lang)
    title = f"{t['lead']} {card.lead_id}"
    if card.not_scored_reason is not None or card.score is None:
        body = _header(card, t) + _not_scored(card, t) + _footer(card, t, lang, scored=False)
        return _page(title, body, lang)
    title += f" · {card.score}"
    body = (
        _header(card, t)
        + _fallback_notice(card, t)
        + _hero(card, t, lang)
        + '<div class="cols">'
        + _matrix_panel(card, t)
        + _reasons_panel(card, t)
        + "</div>"
        + _what_if_panel(card, t)
        + _account_panel(card, t)
        + _footer(card, t, lang, scored=True)
    )
    return _page(title, body, lang)


def render_form(post_url: str, lang: str = "en", example: dict | None = None) -> str:
    """The paste-a-lead page: a JSON textarea (prefilled with ``example``, or a built-in one), a
    language selector and a button whose script POSTs ``{"lead", "activities", "language"}`` as JSON
    to ``post_url`` (kept exactly as given, query string included), then shows the returned card in
    place of the page, or the API's error message (its JSON ``detail``) under the form.
    """
    t = _labels(lang)
    example = example if example is not None else _default_example()
    options = "".join(
        f'<option value="{code}"{" selected" if code == lang else ""}>{name}</option>'
        for code, name in (("en", "English"), ("de", "Deutsch"))
    )
    messages = {k[len("form_"):]: v for k, v in t.items() if k.startswith("form_")}
    body = f"""
<header class="top"><h1 class="form-title">{escape(t['form_title'])}</h1></header>
<p class="muted">{escape(t['form_intro'])}</p>
<form id="lead-form" class="panel" novalidate>
  <label class="field-label" for="lead-json">{escape(t['form_json'])}</label>
  <textarea id="lead-json" name="lead" rows="18" spellcheck="false" autocomplete="off">{escape(json.dumps(example, indent=2, ensure_ascii=False))}</textarea>
  <div class="form-row">
    <label class="field-label" for="lang">{escape(t['form_lang'])}</label>
    <select id="lang" name="language">{options}</select>
    <button id="submit" type="submit">{escape(t['form_submit'])}</button>
  </div>
  <p class="muted small">{escape(t['form_privacy'])}</p>
  <div id="error" class="notice error" role="alert" hidden></div>
</form>
<script>{_FORM_JS.replace("__MESSAGES__", _js(messages)).replace("__POST_URL__", _js(post_url))}</script>
"""
    return _page(t["form_title"], body, lang)


# ---------------------------------------------------------------------------------------------
# pieces of the card


def _labels(lang: str) -> dict[str, str]:
    if lang not in LABELS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}; got {lang!r}")
    return LABELS[lang]


def _header(card: CardData, t: dict[str, str]) -> str:
    return (
        '<header class="top">'
        f'<div><span class="kicker">{escape(t["lead"])}</span> <span class="lead-id">{escape(card.lead_id)}</span></div>'
        "</header>"
    )


def _not_scored(card: CardData, t: dict[str, str]) -> str:
    reason = card.not_scored_reason
    if reason is None:
        text = t["not_scored_note"]
    elif reason.strip().lower() == "do_not_profile":
        text = t["do_not_profile"]
    else:
        text = reason
    return (
        '<section class="panel not-scored" id="not-scored">'
        f'<h2>{escape(t["not_scored"])}</h2>'
        f'<p class="not-scored-reason">{escape(text)}</p>'
        "</section>"
    )


def _fallback_notice(card: CardData, t: dict[str, str]) -> str:
    if not card.fallback_reason:
        return ""  # the model answered, or the rules were asked for on purpose: the footer says who scored
    return (
        '<div class="notice warn" id="fallback" role="status">'
        f'<strong>{escape(t["fallback"])}:</strong> {escape(card.fallback_reason)}'
        "</div>"
    )


def _hero(card: CardData, t: dict[str, str], lang: str) -> str:
    g = card.grade if card.grade in GRADES else "none"
    grade_badge = f'<span class="badge grade g-{g}" id="grade">{escape(t["grade"].format(g=card.grade))}</span>' if card.grade else ""
    if card.sales_ready:
        ready = f'<span class="badge ready" id="sales-ready">✓ {escape(t["ready"])}</span>'
    else:
        ready = f'<span class="badge not-ready" id="sales-ready">{escape(t["not_ready"])}</span>'
    prob = ""
    if card.probability is not None:
        prob = f'<p class="prob">{escape(t["probability"].format(p=_percent(card.probability, lang)))}</p>'
    return (
        f'<section class="hero g-{g}">'
        f'<div class="score-block"><div class="score" id="score">{int(card.score)}</div>'
        f'<div class="score-label">{escape(t["score"])} <span class="muted">({escape(t["out_of"])})</span></div></div>'
        f'<div class="hero-main"><div class="badges">{grade_badge}{ready}</div>{prob}</div>'
        f'<div class="trend">{_change(card, t)}{_sparkline(card.history, t, lang)}</div>'
        "</section>"
    )


def _change(card: CardData, t: dict[str, str]) -> str:
    d = card.score_change
    if d is None:
        return f'<p class="change first" id="change">{escape(t["first_score"])}</p>'
    if d > 0:
        arrow, cls, num = "▲", "up", f"+{d}"
    elif d < 0:
        arrow, cls, num = "▼", "down", f"−{-d}"
    else:
        arrow, cls, num = "●", "same", escape(t["unchanged"])
    return (
        f'<p class="change {cls}" id="change"><span class="arrow">{arrow}</span> <strong>{num}</strong> '
        f'<span class="muted">{escape(t["since_last"])}</span></p>'
    )


def _sparkline(history: list[tuple[datetime, int]], t: dict[str, str], lang: str) -> str:
    if len(history) < 2:
        return ""
    w, h, pad = 220.0, 52.0, 5.0
    times = [ts.timestamp() for ts, _ in history]
    scores = [int(s) for _, s in history]
    t0, t1 = min(times), max(times)
    xs = ([(x - t0) / (t1 - t0) for x in times] if t1 > t0 else [i / (len(scores) - 1) for i in range(len(scores))])
    lo, hi = min(scores), max(scores)
    if hi - lo < 20:  # a small wiggle should look small, not fill the chart
        mid = (hi + lo) / 2
        lo, hi = mid - 10, mid + 10
    pts = [(pad + x * (w - 2 * pad), pad + (1 - (s - lo) / (hi - lo)) * (h - 2 * pad)) for x, s in zip(xs, scores)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    area = f"{pts[0][0]:.1f},{h:.1f} {line} {pts[-1][0]:.1f},{h:.1f}"
    colour = "#15803d" if scores[-1] > scores[0] else "#b91c1c" if scores[-1] < scores[0] else "#475569"
    label = t["trend"].format(scores=" → ".join(str(s) for s in scores))
    lx, ly = pts[-1]
    return (
        f'<svg class="spark" id="sparkline" viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" height="{h:.0f}" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<polygon points="{area}" fill="{colour}" fill-opacity="0.10"/>'
        f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="3.5" fill="{colour}"/>'
        "</svg>"
        f'<div class="spark-dates muted"><span>{escape(_date(history[0][0], lang))}</span>'
        f'<span>{escape(_date(history[-1][0], lang))}</span></div>'
    )


def _cell(card: CardData) -> tuple[str, int] | None:
    """The lead's (fit grade, interest level), from the cell name or the two fields."""
    if card.matrix_cell and len(card.matrix_cell) == 2:
        fit, level = card.matrix_cell[0].upper(), card.matrix_cell[1]
        if fit in GRADES and level.isdigit() and int(level) in LEVELS:
            return fit, int(level)
    if card.fit_grade in GRADES and card.interest_level in LEVELS:
        return card.fit_grade, int(card.interest_level)
    return None


def _quadrant(fit: str, level: int) -> str:
    return QUADRANTS[(fit in ("A", "B"), level in (1, 2))]


def _matrix_panel(card: CardData, t: dict[str, str]) -> str:
    cell = _cell(card)
    here = _quadrant(*cell) if cell else None
    if cell:
        legend = "".join(
            f'<li class="q{" here" if q == here else ""}" data-quadrant="{q}">'
            f'<span class="swatch" style="background:{QUADRANT_COLOURS[q][0]};border-color:{QUADRANT_COLOURS[q][1]}"></span>'
            f'{escape(t[q])}{" <em>← " + escape(t["this_lead"]) + "</em>" if q == here else ""}</li>'
            for q in ("hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention")
        )
        grid = f'<div class="matrix-wrap">{_matrix_svg(cell, t)}<ul class="legend">{legend}</ul></div>'
    else:
        grid = f'<p class="muted">{escape(t["no_matrix"])}</p>'
    rec = ""
    accent = f' style="border-left-color:{QUADRANT_COLOURS[here][1]}"' if here else ""
    if card.recommendation_text:
        rec = (
            f'<div class="recommendation" id="recommendation"{accent}><div class="rec-label">{escape(t["recommendation"])}</div>'
            f'<p class="rec-text">{escape(card.recommendation_text)}</p>'
            f'<p class="advice muted small">{escape(t["advice"])}</p></div>'
        )
    return f'<section class="panel" id="matrix"><h2>{escape(t["matrix"])}</h2>{grid}{rec}</section>'


def _matrix_svg(cell: tuple[str, int], t: dict[str, str]) -> str:
    size, gap, mid_gap, left, top = 44, 3, 5, 42, 40
    parts = []
    for r, fit in enumerate(GRADES):
        for c, level in enumerate(LEVELS):
            x = left + c * (size + gap) + (mid_gap if c >= 2 else 0)
            y = top + r * (size + gap) + (mid_gap if r >= 2 else 0)
            q = _quadrant(fit, level)
            tint, strong = QUADRANT_COLOURS[q]
            name = f"{fit}{level}"
            if (fit, level) == cell:
                parts.append(
                    f'<rect class="cell current" data-cell="{name}" aria-current="true" x="{x}" y="{y}" width="{size}" '
                    f'height="{size}" rx="6" fill="{strong}" stroke="#111827" stroke-width="3"/>'
                    f'<text x="{x + size / 2}" y="{y + size / 2 + 5}" text-anchor="middle" font-size="15" '
                    f'font-weight="700" fill="#ffffff">{name}</text>'
                )
            else:
                parts.append(
                    f'<rect class="cell" data-cell="{name}" x="{x}" y="{y}" width="{size}" height="{size}" rx="6" fill="{tint}"/>'
                    f'<text x="{x + size / 2}" y="{y + size / 2 + 4}" text-anchor="middle" font-size="11" '
                    f'fill="{strong}" fill-opacity="0.55">{name}</text>'
                )
    for r, fit in enumerate(GRADES):
        y = top + r * (size + gap) + (mid_gap if r >= 2 else 0) + size / 2 + 5
        parts.append(f'<text x="{left - 10}" y="{y}" text-anchor="end" font-size="13" font-weight="600" fill="#374151">{fit}</text>')
    for c, level in enumerate(LEVELS):
        x = left + c * (size + gap) + (mid_gap if c >= 2 else 0) + size / 2
        parts.append(f'<text x="{x}" y="{top - 8}" text-anchor="middle" font-size="13" font-weight="600" fill="#374151">{level}</text>')
    width = left + 4 * size + 3 * gap + mid_gap + 2
    height = top + 4 * size + 3 * gap + mid_gap + 2
    grid_mid_y = top + (4 * size + 3 * gap + mid_gap) / 2
    grid_mid_x = left + (4 * size + 3 * gap + mid_gap) / 2
    parts.append(f'<text x="{grid_mid_x}" y="13" text-anchor="middle" font-size="11" fill="#6b7280">{escape(t["interest_axis"])}</text>')
    parts.append(
        f'<text x="12" y="{grid_mid_y}" text-anchor="middle" font-size="11" fill="#6b7280" '
        f'transform="rotate(-90 12 {grid_mid_y})">{escape(t["fit_axis"])}</text>'
    )
    label = f'{t["matrix"]}: {cell[0]}{cell[1]}'
    return (
        f'<svg class="matrix" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(parts)}</svg>'
    )


def _reasons_panel(card: CardData, t: dict[str, str]) -> str:
    ups = [r for r in card.reasons if r.effect > 0][:MAX_REASONS_PER_SIDE]
    downs = [r for r in card.reasons if r.effect < 0][:MAX_REASONS_PER_SIDE]
    strongest = max((abs(r.effect) for r in ups + downs), default=0.0) or 1.0

    def items(rs: list[CardReason], empty: str, cls: str) -> str:
        if not rs:
            return f'<p class="muted small">{escape(empty)}</p>'
        lis = []
        for r in rs:
            tag = ""
            if r.group in ("fit", "interest"):
                tag = f'<span class="tag tag-{r.group}">{escape(t[r.group])}</span>'
            width = max(6.0, 100.0 * abs(r.effect) / strongest)
            lis.append(
                f'<li class="reason {cls}" title="{escape(t["effect"].format(e=f"{r.effect:+.2f}"))}">'
                f'<div class="reason-line">{tag}<span class="reason-text">{escape(r.text)}</span></div>'
                f'<div class="bar"><span style="width:{width:.0f}%"></span></div></li>'
            )
        return f'<ul class="reasons">{"".join(lis)}</ul>'

    return (
        f'<section class="panel" id="reasons"><h2>{escape(t["reasons"])}</h2>'
        f'<div class="reason-group" id="raises"><h3 class="up">▲ {escape(t["raises"])}</h3>{items(ups, t["none_raises"], "up")}</div>'
        f'<div class="reason-group" id="lowers"><h3 class="down">▼ {escape(t["lowers"])}</h3>{items(downs, t["none_lowers"], "down")}</div>'
        "</section>"
    )


def _what_if_panel(card: CardData, t: dict[str, str]) -> str:
    """Levers someone can pull (models.whatif), each with the score and grade it alone would reach,
    then the action set that makes the lead sales-ready; never the reasons that lower the score."""
    if card.sales_ready:
        inner = f'<p class="ok">✓ {escape(t["already_ready"])}</p>'
        return f'<section class="panel" id="what-if"><h2>{escape(t["what_if"])}</h2>{inner}</section>'
    parts = []
    levers = card.what_if_levers or []
    if levers:
        lis = "".join(
            f'<li class="lever lever-{escape(lv.kind)}"><span class="lever-text">{escape(lv.text)}</span>'
            f'<span class="target" title="{escape(_lever_target(lv, t))}">→ {int(lv.score)}</span>'
            + (f'<span class="badge grade g-{lv.grade}">{escape(t["grade"].format(g=lv.grade))}</span>'
               if lv.grade in GRADES else "")
            + "</li>"
            for lv in levers
        )
        parts.append(f'<p>{escape(t["levers"])}</p><ul class="levers" id="what-if-levers">{lis}</ul>')
    if card.what_if_text:
        lead_in = t["what_if_score"].format(s=card.what_if_score) if card.what_if_score is not None else t["what_if_plain"]
        target = f'<span class="target">→ {int(card.what_if_score)}</span>' if card.what_if_score is not None else ""
        grade = (f'<span class="badge grade g-{card.what_if_grade}">{escape(t["grade"].format(g=card.what_if_grade))}</span>'
                 if card.what_if_grade in GRADES else "")
        parts.append(
            f'<p>{escape(lead_in)}</p>'
            f'<p class="actions" id="what-if-actions"><span>{escape(card.what_if_text)}</span>{target}{grade}</p>'
        )
    if card.what_if_levers is None and not card.what_if_text:
        note = "not_worked_out"
    elif not card.what_if_actions_tried:
        note = "confirm_only" if levers else "nothing_to_confirm"
    elif not parts:
        note = "nothing_moves"
    elif not card.what_if_text:
        note = "no_combination"
    else:
        note = None
    if note:
        cls = "muted" if parts else "nothing"
        parts.append(f'<p class="{cls}" id="what-if-note">{escape(t[note])}</p>')
    return f'<section class="panel" id="what-if"><h2>{escape(t["what_if"])}</h2>{"".join(parts)}</section>'


def _lever_target(lever: CardLever, t: dict[str, str]) -> str:
    return t["lever_target"].format(s=int(lever.score), g=lever.grade or "–")


def _account_panel(card: CardData, t: dict[str, str]) -> str:
    if card.account is None:
        return ""
    key, n, score, coverage = card.account
    line = t["account_line"].format(key=key, n=n, score=score)
    return (f'<section class="panel" id="account"><h2>{escape(t["account"])}</h2>'
            f'<p>{escape(line)}</p><p class="muted">{escape(coverage)}</p></section>')


def _footer(card: CardData, t: dict[str, str], lang: str, scored: bool) -> str:
    bits = []
    if scored:
        who = t["scorer_rules"] if card.scorer == "rules" else t["scorer_model"] if card.scorer == "model" else card.scorer
        bits.append(f'{escape(t["scorer"])}: <strong id="scorer">{escape(who)}</strong>')
        if card.model_version:
            bits.append(f'{escape(t["version"])}: <span id="model-version">{escape(card.model_version)}</span>')
    if card.as_of is not None:
        bits.append(f'{escape(t["as_of"])}: <time datetime="{escape(card.as_of.isoformat())}">{escape(_datetime(card.as_of, lang))}</time>')
    if not bits:
        return ""
    spans = " · ".join(f'<span class="bit">{b}</span>' for b in bits)
    return f'<footer class="foot">{spans}</footer>'


# ---------------------------------------------------------------------------------------------
# formatting


def _percent(p: float, lang: str) -> str:
    pct = 100 * p
    num = "<1" if 0 < pct < 1 else ">99" if 99 < pct < 100 else f"{pct:.0f}"
    return f"{num}\u00a0%" if lang == "de" else f"{num}%"  # no break between number and sign


def _as_utc(ts: datetime) -> tuple[datetime, str]:
    if ts.tzinfo is None:
        return ts, ""
    return ts.astimezone(timezone.utc), " UTC"


def _date(ts: datetime, lang: str) -> str:
    ts, _ = _as_utc(ts)
    return ts.strftime("%d.%m.%Y" if lang == "de" else "%Y-%m-%d")


def _datetime(ts: datetime, lang: str) -> str:
    ts, zone = _as_utc(ts)
    return ts.strftime("%d.%m.%Y %H:%M" if lang == "de" else "%Y-%m-%d %H:%M") + zone


def _js(value) -> str:
    """A JSON literal safe inside a <script> element (no '</script>', no HTML entities)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _default_example() -> dict:
    from leadscore.serving.schemas import EXAMPLE_ACTIVITY, EXAMPLE_LEAD

    return {
        "lead": dict(EXAMPLE_LEAD),
        "activities": [
            {"occurred_at": "2026-05-20T10:12:00", "activity_type": "whitepaper_download", "channel": "web"},
            dict(EXAMPLE_ACTIVITY),
            {"occurred_at": "2026-06-02T08:47:00", "activity_type": "email_click", "channel": "email"},
        ],
    }


def _page(title: str, body: str, lang: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body>\n<main class="card">{body}</main>\n</body>\n</html>\n'
    )


_CSS = """
:root{--ink:#111827;--text:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f4f5f7;--panel:#fff;
--up:#15803d;--down:#b91c1c;--A:#15803d;--B:#0e7490;--C:#b45309;--D:#64748b;--none:#64748b;
--fit:#4338ca;--interest:#c2410c;color-scheme:light}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif}
.card{max-width:880px;margin:0 auto;padding:14px}
h1,h2,h3{margin:0;color:var(--ink)}
h2{font-size:13px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;color:var(--muted);margin-bottom:10px}
h3{font-size:13px;font-weight:600;margin:4px 0 6px}
p{margin:0 0 6px}
.muted{color:var(--muted)}
.small{font-size:12.5px}
.top{display:flex;justify-content:space-between;align-items:baseline;gap:8px;flex-wrap:wrap;margin:2px 2px 10px}
.kicker{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:var(--muted)}
.lead-id{font-weight:600;color:var(--ink);word-break:break-all}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin-bottom:12px;min-width:0}
.notice{border-radius:8px;padding:10px 12px;margin-bottom:12px;font-size:14px}
.notice.warn{background:#fffbeb;border:1px solid #f59e0b;color:#78350f}
.notice.error{background:#fef2f2;border:1px solid #f87171;color:#7f1d1d;white-space:pre-wrap;margin:12px 0 0}
.hero{display:flex;flex-wrap:wrap;align-items:center;gap:14px 22px;background:var(--panel);border:1px solid var(--line);
border-left:6px solid var(--gc);border-radius:10px;padding:14px 18px;margin-bottom:12px}
.g-A{--gc:var(--A)}.g-B{--gc:var(--B)}.g-C{--gc:var(--C)}.g-D{--gc:var(--D)}.g-none{--gc:var(--none)}
.score-block{text-align:center;min-width:92px}
.score{font-size:56px;line-height:1;font-weight:800;color:var(--gc);font-variant-numeric:tabular-nums;letter-spacing:-.02em}
.score-label{font-size:12px;color:var(--text);margin-top:4px;white-space:nowrap}
.hero-main{flex:1 1 180px;min-width:0}
.badges{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:8px}
.badge{display:inline-block;border-radius:999px;padding:3px 11px;font-size:13px;font-weight:600;white-space:nowrap}
.badge.grade{background:var(--gc);color:#fff;border:1px solid var(--gc)}
.badge.ready{background:#dcfce7;color:#14532d;border:1px solid #86efac}
.badge.not-ready{background:#f1f5f9;color:#475569;border:1px solid #cbd5e1}
.prob{font-size:14px;margin:0}
.trend{flex:0 1 230px;min-width:0}
.change{margin:0 0 4px;font-size:14px}
.change.up .arrow,.change.up strong{color:var(--up)}
.change.down .arrow,.change.down strong{color:var(--down)}
.change.same .arrow{color:var(--muted)}
.change.first{color:var(--muted);font-style:italic}
.spark{display:block;width:100%;max-width:220px;height:auto}
.spark-dates{display:flex;justify-content:space-between;max-width:220px;font-size:11px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:0 12px}
.matrix-wrap{display:flex;flex-wrap:wrap;align-items:center;gap:8px 14px}
.matrix{display:block;max-width:100%;height:auto;flex:0 0 auto}
.legend{list-style:none;margin:0;padding:0;font-size:13px;flex:1 1 140px}
.legend li{display:flex;align-items:center;gap:7px;margin:4px 0;color:var(--muted)}
.legend li.here{color:var(--ink);font-weight:600}
.legend em{font-style:normal;font-weight:400;color:var(--muted);white-space:nowrap}
.swatch{width:13px;height:13px;border-radius:3px;border:2px solid;flex:0 0 auto}
.recommendation{margin-top:12px;border-left:4px solid #0e7490;background:#f8fafc;border-radius:6px;padding:9px 12px}
.rec-label{font-size:11.5px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;color:var(--muted)}
.rec-text{font-size:15px;font-weight:600;color:var(--ink);margin:2px 0 4px}
.advice{margin:0}
.reason-group+.reason-group{margin-top:10px}
h3.up{color:var(--up)}h3.down{color:var(--down)}
.reasons{list-style:none;margin:0;padding:0}
.reason{padding:6px 0;border-top:1px solid #f1f2f4}
.reason:first-child{border-top:0}
.reason-line{display:flex;gap:8px;align-items:baseline}
.reason-text{min-width:0;overflow-wrap:anywhere}
.tag{flex:0 0 auto;font-size:10.5px;font-weight:700;letter-spacing:.04em;text-transform:uppercase;border-radius:4px;padding:1px 6px;position:relative;top:-1px}
.tag-fit{background:#eef2ff;color:var(--fit)}
.tag-interest{background:#fff7ed;color:var(--interest)}
.bar{height:4px;background:#f1f2f4;border-radius:2px;margin-top:5px;overflow:hidden}
.bar span{display:block;height:100%;border-radius:2px}
.reason.up .bar span{background:#22c55e}
.reason.down .bar span{background:#ef4444}
.actions{display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px;font-size:16px;font-weight:600;color:var(--ink);margin:4px 0 0}
.actions>span:first-child{background:#eff6ff;border:1px solid #bfdbfe;border-radius:8px;padding:6px 10px}
.target{color:var(--up);font-size:20px;font-weight:800;white-space:nowrap}
.levers{list-style:none;margin:0 0 10px;padding:0}
.lever{display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px;padding:6px 0;border-top:1px solid #f1f2f4}
.lever:first-child{border-top:0}
.lever-text{flex:1 1 200px;min-width:0;overflow-wrap:anywhere;font-weight:600;color:var(--ink)}
.lever .target{font-size:16px}
.lever .badge.grade,.actions .badge.grade{font-size:12px;padding:2px 9px}
.nothing{color:var(--text)}
.ok{color:#14532d;font-weight:600}
.not-scored h2{font-size:20px;text-transform:none;letter-spacing:0;color:var(--ink)}
.not-scored-reason{font-size:15px}
.foot{font-size:12.5px;color:var(--muted);padding:2px 4px 8px;overflow-wrap:anywhere}
.foot .bit{display:inline-block;max-width:100%}
.foot strong{color:var(--text);font-weight:600}
.form-title{font-size:20px}
.field-label{display:block;font-size:13px;font-weight:600;margin-bottom:6px;color:var(--ink)}
textarea{width:100%;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
border:1px solid #cbd5e1;border-radius:8px;padding:10px;resize:vertical;background:#fbfcfd;color:var(--ink)}
textarea:focus,select:focus,button:focus-visible{outline:2px solid #2563eb;outline-offset:1px}
.form-row{display:flex;flex-wrap:wrap;align-items:center;gap:10px;margin:12px 0 8px}
.form-row .field-label{margin:0}
select{font:inherit;padding:6px 8px;border:1px solid #cbd5e1;border-radius:6px;background:#fff}
button{font:inherit;font-weight:600;background:#1d4ed8;color:#fff;border:0;border-radius:8px;padding:8px 18px;cursor:pointer;margin-left:auto}
button:hover{background:#1e40af}
button:disabled{background:#94a3b8;cursor:progress}
@media (max-width:520px){.card{padding:8px}.panel{padding:12px}.hero{padding:12px 14px;gap:10px 16px}
.score{font-size:48px}.cols{grid-template-columns:1fr}.trend{flex-basis:100%}}
"""

_FORM_JS = """
(function () {
  "use strict";
  var POST_URL = __POST_URL__;
  var M = __MESSAGES__;
  var form = document.getElementById("lead-form");
  var input = document.getElementById("lead-json");
  var language = document.getElementById("lang");
  var button = document.getElementById("submit");
  var errorBox = document.getElementById("error");

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function describe(status, text) {
    var detail = null;
    try { detail = JSON.parse(text).detail; } catch (e) { detail = null; }
    if (Array.isArray(detail)) {
      // FastAPI's validation errors: [{loc: [...], msg: "..."}]
      detail = detail.map(function (d) {
        if (d && typeof d === "object") {
          return (Array.isArray(d.loc) ? d.loc.join(".") + ": " : "") + (d.msg || JSON.stringify(d));
        }
        return String(d);
      }).join("\\n");
    } else if (detail !== null && typeof detail === "object") {
      detail = JSON.stringify(detail);
    }
    return M.failed + " (HTTP " + status + ")" + (detail ? ":\\n" + detail : ".");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    var body;
    try {
      body = JSON.parse(input.value);
    } catch (e) {
      showError(M.bad_json + " " + e.message);
      return;
    }
    // also accept the /score shape with exactly one lead
    if (body && Array.isArray(body.leads) && body.leads.length === 1) { body = body.leads[0]; }
    if (!body || typeof body !== "object" || !body.lead || typeof body.lead !== "object") {
      showError(M.no_lead);
      return;
    }
    button.disabled = true;
    button.textContent = M.busy;
    fetch(POST_URL, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "text/html"},
      body: JSON.stringify({lead: body.lead, activities: body.activities || [], language: language.value})
    }).then(function (response) {
      return response.text().then(function (text) {
        if (response.ok) {
          document.open();
          document.write(text);
          document.close();
        } else {
          showError(describe(response.status, text));
        }
      });
    }).catch(function (e) {
      showError(M.network + " " + e.message);
    }).then(function () {
      button.disabled = false;
      button.textContent = M.submit;
    });
  });
})();
"""
