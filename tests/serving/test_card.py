"""The lead card and the paste-a-lead form: content as HTML, then rendered by headless Chromium.

Screenshots land in tests/artifacts/ for people to look at (card_en.png, card_de.png, ...).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from leadscore.serving.card import CardData, CardLever, CardReason, render_card, render_form
from tests.browser import chromium_path, dump_dom, screenshot

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AS_OF = datetime(2026, 6, 3, 9, 15, tzinfo=timezone.utc)
EVIL = "<script>alert(1)</script>"


def hot_lead(**changes) -> CardData:
    """A sales-ready A1 lead whose score rose from 41 to 82 over four scorings."""
    card = CardData(
        lead_id="L000123",
        score=82,
        probability=0.817,
        grade="A",
        sales_ready=True,
        fit_grade="A",
        interest_level=1,
        matrix_cell="A1",
        recommendation_text="Ready: hand to sales",
        reasons=[
            CardReason("Requested a demo 1× in the last 14 days", 1.35, "interest"),
            CardReason("Visited the pricing page 3× in the last 14 days", 0.82, "interest"),
            CardReason("Seniority: head of department", 0.61, "fit"),
            CardReason("Company size: 420 employees", 0.44, "fit"),
            CardReason("No activity for 9 days", -0.18, "interest"),
        ],
        history=[(AS_OF - timedelta(days=d), s) for d, s in ((45, 41), (30, 48), (12, 70))] + [(AS_OF, 82)],
        score_change=12,
        what_if_text=None,
        what_if_score=None,
        scorer="model",
        model_version="7",
        fallback_reason=None,
        as_of=AS_OF,
    )
    for k, v in changes.items():
        setattr(card, k, v)
    return card


def cold_lead(**changes) -> CardData:
    """A C3 lead below the sales threshold, with a what-if and a falling score."""
    card = CardData(
        lead_id="L000987",
        score=23,
        probability=0.231,
        grade="C",
        sales_ready=False,
        fit_grade="B",
        interest_level=3,
        matrix_cell="B3",
        recommendation_text="Good fit, little interest yet: keep nurturing",
        reasons=[
            CardReason("Industry: manufacturing", 0.52, "fit"),
            CardReason("No activity for 41 days", -0.95, "interest"),
            CardReason("E-mail from a free-mail provider", -0.48, "fit"),
            CardReason("Opened 2 e-mail(s) in the last 30 days", 0.12, "interest"),
        ],
        history=[(AS_OF - timedelta(days=20), 30), (AS_OF, 23)],
        score_change=-7,
        what_if_text="1× demo request + 2× pricing page visit",
        what_if_score=64,
        what_if_grade="B",
        what_if_levers=[CardLever("1× demo request", 41, "C"), CardLever("Confirm the budget in the call: yes", 35, "C", "confirm")],
        scorer="model",
        model_version="7",
        fallback_reason=None,
        as_of=AS_OF,
    )
    for k, v in changes.items():
        setattr(card, k, v)
    return card


def german_lead() -> CardData:
    return cold_lead(
        lead_id="L000555",
        score=47,
        probability=0.468,
        grade="B",
        fit_grade="D",
        interest_level=2,
        matrix_cell="D2",
        recommendation_text="Interessiert, passt aber schlecht: kauft kaum, als Empfehlungsgeber pflegen",
        reasons=[
            CardReason("Hat die Preisseite in den letzten 14 Tagen 3× besucht", 0.9, "interest"),
            CardReason("Hat in den letzten 30 Tagen an 1 Webinar(en) teilgenommen", 0.4, "interest"),
            CardReason("Jobtitel: Werkstudent", -1.2, "fit"),
            CardReason("Unternehmensgröße: 8 Mitarbeitende", -0.7, "fit"),
        ],
        history=[(AS_OF - timedelta(days=d), s) for d, s in ((60, 30), (35, 38), (14, 44))] + [(AS_OF, 47)],
        score_change=3,
        what_if_text=None,
        what_if_score=None,
        what_if_grade=None,
        what_if_levers=[CardLever("Budget im Gespräch bestätigen: ja", 55, "B", "confirm"),
                        CardLever("Kaufzeitraum bestätigen: unter 3 Monaten", 52, "B", "confirm"),
                        CardLever("1× Demo-Anfrage", 50, "C")],
    )


def _current_cell(html: str) -> str:
    cells = re.findall(r'<rect class="cell current" data-cell="([A-D][1-4])"', html)
    assert len(cells) == 1, cells
    return cells[0]


# --- content ---------------------------------------------------------------------------------


def test_hot_lead_shows_score_grade_ready_and_rising_trend():
    html = render_card(hot_lead())
    assert html.startswith("<!DOCTYPE html>") and '<html lang="en">' in html
    assert '<div class="score" id="score">82</div>' in html
    assert "Grade A" in html and "✓ Sales-ready" in html and "Not sales-ready" not in html
    assert "82%" in html  # the probability
    assert 'class="change up"' in html and "▲" in html and "+12" in html
    assert 'id="sparkline"' in html and "41 → 48 → 70 → 82" in html
    assert _current_cell(html) == "A1"
    assert 'class="q here" data-quadrant="hand_to_sales"' in html
    assert "Ready: hand to sales" in html and "nothing is disqualified automatically" in html
    assert "Already sales-ready" in html and 'id="what-if-levers"' not in html
    assert 'id="fallback"' not in html
    assert "Model" in html and 'id="model-version">7<' in html and "2026-06-03 09:15 UTC" in html


def test_reasons_are_split_by_direction_and_tagged():
    html = render_card(hot_lead())
    raises = html[html.index('id="raises"'):html.index('id="lowers"')]
    lowers = html[html.index('id="lowers"'):html.index('id="what-if"')]
    assert "Requested a demo" in raises and "Company size" in raises and "No activity" not in raises
    assert "No activity for 9 days" in lowers and "Requested a demo" not in lowers
    assert raises.count('class="tag tag-interest"') == 2 and raises.count('class="tag tag-fit"') == 2
    # strongest first, as given
    assert raises.index("Requested a demo") < raises.index("Visited the pricing page") < raises.index("Company size")


def _what_if(html: str) -> str:
    start = html.index('id="what-if"')
    return html[start:html.index("</section>", start)]


def test_cold_lead_shows_what_if_falling_trend_and_right_cell():
    html = render_card(cold_lead())
    assert "Not sales-ready yet" in html and "Grade C" in html
    assert 'class="change down"' in html and "▼" in html and "−7" in html
    assert _current_cell(html) == "B3"
    assert 'data-quadrant="keep_nurturing"' in html and 'class="q here" data-quadrant="keep_nurturing"' in html
    actions = html[html.index('id="what-if-actions"'):]
    assert "1× demo request + 2× pricing page visit" in actions and "→ 64" in actions and "Grade B" in actions
    assert "lift the score to 64" in html


def test_what_if_lists_levers_with_score_and_grade_and_never_the_negative_reasons():
    panel = _what_if(render_card(cold_lead()))
    levers = panel[panel.index('id="what-if-levers"'):panel.index("</ul>")]
    assert levers.count('<li class="lever') == 2
    demo = levers[levers.index("1× demo request"):levers.index("Confirm the budget")]
    assert "→ 41" in demo and "Grade C" in demo and "score 41, grade C" in demo
    assert "Confirm the budget in the call: yes" in levers and 'class="lever lever-confirm"' in levers
    assert levers.index("1× demo request") < levers.index("Confirm the budget")  # best first, as given
    for negative in ("No activity for 41 days", "free-mail", "Industry", "holds"):
        assert negative not in panel, negative
    # levers but no action set over the threshold: said so, still no negative reasons
    alone = _what_if(render_card(cold_lead(what_if_text=None, what_if_score=None, what_if_grade=None)))
    assert "1× demo request" in alone and 'id="what-if-actions"' not in alone
    assert "would not make it sales-ready yet" in alone and "No activity" not in alone


def test_what_if_says_plainly_when_nothing_moves_the_lead():
    nothing = cold_lead(what_if_text=None, what_if_score=None, what_if_grade=None, what_if_levers=[],
                        score_change=None, history=[])
    html = render_card(nothing)
    panel = _what_if(html)
    assert "Nothing marketing or sales can do now would make the lead sales-ready." in panel
    assert "<li" not in panel and "No activity for 41 days" not in panel and "free-mail" not in panel
    de = _what_if(render_card(nothing, lang="de"))
    assert "Nichts, was Marketing oder Vertrieb jetzt tun kann, würde den Lead vertriebsbereit machen." in de
    assert "First score" in html and 'id="sparkline"' not in html
    assert "▲" not in html[html.index('id="change"') - 40:html.index('id="change"') + 200]
    # not worked out (the rules answered) is not the same as nothing
    rules = _what_if(render_card(cold_lead(what_if_text=None, what_if_score=None, what_if_levers=None, scorer="rules")))
    assert "Not worked out for this score" in rules and "Nothing marketing" not in rules and "No activity" not in rules


def test_a_stored_score_offers_only_what_the_rep_can_confirm():
    stored = cold_lead(what_if_text=None, what_if_score=None, what_if_actions_tried=False,
                       what_if_levers=[CardLever("Budget im Gespräch bestätigen: ja", 35, "C", "confirm")])
    panel = _what_if(render_card(stored, lang="de"))
    assert "Budget im Gespräch bestätigen: ja" in panel and "→ 35" in panel and "Klasse C" in panel
    assert "Bewerten Sie den Lead neu" in panel and "Nichts, was Marketing" not in panel
    none = _what_if(render_card(cold_lead(what_if_text=None, what_if_score=None, what_if_actions_tried=False,
                                          what_if_levers=[])))
    assert "Nothing the rep can confirm in a call would raise the score" in none and "No activity" not in none


def test_rules_fallback_is_visible():
    html = render_card(cold_lead(scorer="rules", model_version="rules:3", fallback_reason="model unavailable: registry unreachable"))
    notice = html[html.index('id="fallback"'):]
    assert "Scored by the rules (SLA points) instead of the model" in notice
    assert "model unavailable: registry unreachable" in notice
    assert "Rules (SLA points)" in html and "rules:3" in html


def test_not_scored_shows_only_the_reason():
    html = render_card(cold_lead(score=None, probability=None, grade=None, not_scored_reason="do_not_profile"))
    assert "Not scored" in html and "objected to profiling" in html
    for absent in ('id="score"', 'id="matrix"', 'id="reasons"', 'id="what-if"', "Grade", "Sales-ready", "keep nurturing"):
        assert absent not in html
    assert "L000987" in html
    de = render_card(cold_lead(score=None, not_scored_reason="do_not_profile"), lang="de")
    assert "Nicht bewertet" in de and "Profilbildung widersprochen" in de and 'id="score"' not in de
    custom = render_card(cold_lead(score=None, not_scored_reason="Lead is a known competitor <b>"))
    assert "Lead is a known competitor &lt;b&gt;" in custom


def test_text_from_data_is_escaped():
    card = hot_lead(
        lead_id=f'X"><img src=x onerror=alert(1)>{EVIL}',
        reasons=[CardReason(EVIL, 1.0, "fit"), CardReason(f"bad & {EVIL}", -1.0, "interest")],
        recommendation_text=EVIL,
        model_version=EVIL,
        fallback_reason=EVIL,
        what_if_text=EVIL,
        what_if_levers=[CardLever(EVIL, 40, "C", EVIL)],
        sales_ready=False,
    )
    html = render_card(card)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "bad &amp; &lt;script&gt;" in html
    assert render_card(cold_lead(score=None, not_scored_reason=EVIL)).lower().count("<script") == 0


def test_german_labels():
    html = render_card(german_lead(), lang="de")
    assert '<html lang="de">' in html
    for label in ("Lead-Score", "Klasse B", "Noch nicht vertriebsbereit", "Passung × Interesse", "Hebt den Score",
                  "Senkt den Score", "Was ihn ändern würde", "Jede dieser Maßnahmen würde den Score schon allein heben",
                  "Budget im Gespräch bestätigen: ja", "Klasse C", "Empfehlung",
                  "Niemand wird automatisch aussortiert", "seit dem letzten Score", "Stand", "03.06.2026 09:15 UTC",
                  "47\u00a0%", "Als Empfehlungsgeber pflegen"):
        assert label in html, label
    for english in ("Sales-ready", "Raises the score", "What would change it", "Grade"):
        assert english not in html, english
    assert _current_cell(html) == "D2"
    assert "Vertriebsbereit" in render_card(hot_lead(), lang="de")
    with pytest.raises(ValueError, match="lang must be one of en, de"):
        render_card(hot_lead(), lang="fr")


def test_the_card_is_self_contained():
    for html in (render_card(hot_lead()), render_card(cold_lead(), lang="de"), render_form("/card?token=a&b=c")):
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "nothing may load from elsewhere"
        assert "@import" not in html and "url(" not in html
        assert "X-Frame-Options" not in html and "frame-ancestors" not in html


def test_form_posts_json_to_the_given_url():
    url = "/api/card?token=abc&x=</script>"
    html = render_form(url, lang="de")
    assert "Lead bewerten" in html and '<option value="de" selected>' in html
    assert "fetch(POST_URL" in html and "application/json" in html
    assert html.lower().count("</script>") == 1  # the URL cannot close the script early
    # the URL reaches fetch() unchanged: a JSON string literal, with <, > and & as \u escapes
    assert 'var POST_URL = "/api/card?token=abc\\u0026x=\\u003c/script\\u003e";' in html
    example = render_form("/x", example={"lead": {"lead_id": EVIL}, "activities": []})
    assert "&lt;script&gt;" in example and "<script>alert" not in example
    default = render_form("/x")
    assert "L000123" in default and "activities" in default


# --- in a browser ----------------------------------------------------------------------------


def _distinct_colours(png: Path) -> int:
    from matplotlib.image import imread

    pixels = imread(png)
    flat = pixels.reshape(-1, pixels.shape[-1])
    return len({tuple(p) for p in flat[:: max(1, len(flat) // 50_000)]})


def test_chromium_renders_the_cards(tmp_path):
    chromium_path()
    cases = {"en": (hot_lead(), "en", 900, 1000), "de": (german_lead(), "de", 420, 1450),
             "cold_en": (cold_lead(scorer="rules", model_version="rules:3", fallback_reason="model unavailable"), "en", 640, 1250)}
    for name, (card, lang, width, height) in cases.items():
        page = tmp_path / f"card_{name}.html"
        page.write_text(render_card(card, lang), encoding="utf-8")
        if name == "en":
            dom = dump_dom(page)
            assert 'id="score">82</div>' in dom and 'data-cell="A1" aria-current="true"' in dom
            assert 'id="sparkline"' in dom and 'id="raises"' in dom and 'id="lowers"' in dom
            assert "</main>" in dom and "<script" not in dom
        png = screenshot(page, ARTIFACTS / f"card_{name}.png", width=width, height=height)
        assert png.stat().st_size > 10_000, f"{png} is suspiciously small"
        assert _distinct_colours(png) > 50, f"{png} looks blank"


class _FakeApi(BaseHTTPRequestHandler):
    """Serves the form at / and answers its POST like the service would (or with a 422)."""

    received: list[tuple[str, str, dict]] = []
    fail = False

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, body: str, ctype: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        # the test clicks the button itself: the form has no auto-submit of its own
        page = render_form("/api/card?token=s3cret&x=1").replace(
            "</body>", '<script>document.getElementById("lead-form").requestSubmit()</script></body>')
        self._send(200, page, "text/html; charset=utf-8")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        if type(self).fail:
            detail = [{"loc": ["body", "lead", "created_at"], "msg": "Field required", "type": "missing"}]
            self._send(422, json.dumps({"detail": detail}), "application/json")
        else:
            self._send(200, render_card(hot_lead(lead_id=body["lead"]["lead_id"]), body["language"]), "text/html; charset=utf-8")


@pytest.fixture
def fake_api():
    _FakeApi.received = []
    _FakeApi.fail = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_form_in_chromium_posts_and_shows_the_card(fake_api):
    dom = dump_dom(fake_api, budget_ms=5000)
    assert len(_FakeApi.received) == 1, "the form did not POST"
    path, ctype, body = _FakeApi.received[0]
    assert path == "/api/card?token=s3cret&x=1" and ctype == "application/json"
    assert set(body) == {"lead", "activities", "language"} and body["language"] == "en"
    assert body["lead"]["lead_id"] == "L000123" and body["activities"]
    assert 'id="score">82</div>' in dom and "lead-form" not in dom, "the card should replace the form"


def test_form_in_chromium_shows_the_api_error(fake_api):
    _FakeApi.fail = True
    dom = dump_dom(fake_api, budget_ms=5000)
    assert len(_FakeApi.received) == 1
    error = dom[dom.index('id="error"'):]
    assert "hidden" not in error[:60] and "HTTP 422" in error and "body.lead.created_at: Field required" in error


def test_form_screenshot(tmp_path):
    page = tmp_path / "form_en.html"
    page.write_text(render_form("/card"), encoding="utf-8")
    png = screenshot(page, ARTIFACTS / "form_en.png", width=700, height=760)
    assert _distinct_colours(png) > 20


# --- with the trained model: the panel as the service fills it -----------------------------------


def test_served_what_if_panel_shows_the_models_levers_and_no_reasons(trained, demo_dir):
    """A freshly scored lead (POST /card) and its stored score (GET /leads/{id}/card), both filled
    by serving/cards.py from the model: levers with the scores they reach, never negative reasons."""
    from types import SimpleNamespace

    import pandas as pd

    from leadscore.features.contract import read_export
    from leadscore.features.online import activity_lists, as_of_micros, profile_dicts
    from leadscore.features.snapshots import scoring_snapshots
    from leadscore.models.whatif import what_would_change
    from leadscore.serving.cards import card_from_history, card_from_scored
    from leadscore.serving.core import Scored, _out
    from leadscore.serving.ledger import LedgerEntry

    model = trained["model"]
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=20)
    profiles, histories, t = profile_dicts(export.leads), activity_lists(export.activities), as_of_micros(as_of)
    found = None
    for lead_id in scoring_snapshots(export, as_of)["lead_id"].astype(str):
        result = model.score_one(profiles[lead_id], histories.get(lead_id, []), t, lang="de")
        if result.sales_ready or not any(r.effect < 0 for r in result.reasons):
            continue
        result.what_if = what_would_change(model, model.online, profiles[lead_id], histories.get(lead_id, []), t, lang="de")
        if result.what_if and "budget_confirmed" in {lv.name for lv in result.what_if.levers}:
            found = lead_id, result
            break
    assert found, "no lead below the threshold with an unconfirmed budget that confirming would raise"
    lead_id, result = found
    raw, _ = model.online.features(profiles[lead_id], histories.get(lead_id, []), t)
    negatives = [r.text for r in result.reasons if r.effect < 0]

    fresh = _what_if(card_from_scored(Scored(_out(result, None, []), result, raw), [], "de"))
    for lv in result.what_if.levers:
        assert lv.text in fresh and f"→ {lv.score}" in fresh and f"Klasse {lv.grade}" in fresh
    assert all(text not in fresh for text in negatives)

    recorded = {k: (None if isinstance(v, float) and v != v else v) for k, v in raw.items()}
    entry = LedgerEntry(lead_key="k", as_of=as_of.to_pydatetime(), scored_at=as_of.to_pydatetime(), scorer="model",
                        model_version=model.version, probability=result.probability, score=result.score,
                        grade=result.grade, reasons=[], features=recorded, fit_grade=result.matrix.fit_grade,
                        interest_level=result.matrix.interest_level, matrix_cell=result.matrix.cell, lang="de")
    core = SimpleNamespace(model_for=lambda version: model if version == model.version else None)
    stored = _what_if(card_from_history(core, lead_id, [entry], "de"))
    budget = next(lv for lv in result.what_if.levers if lv.name == "budget_confirmed")
    assert "Budget im Gespräch bestätigen: ja" in stored and f"→ {budget.score}" in stored
    assert "Bewerten Sie den Lead neu" in stored and all(text not in stored for text in negatives)
    assert "Demo-Anfrage" not in stored  # actions need the activity history, which the ledger does not keep
