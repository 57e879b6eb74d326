"""Lead ids that need encoding work in every lead route and in the card link; no spelling of a
link's path opens another lead.

The link signs the lead id as the route decodes it (``serving.security.card_link``); the gate
checks the id the router extracts, so the two cannot disagree. Ids with ``/`` are read by the
routes' ``{lead_id:path}``: ``/leads/a/b/card`` and ``/leads/a%2Fb/card`` are both lead ``a/b``.
"""

import html
import time
import unicodedata
from urllib.parse import quote, unquote

import pandas as pd
import pytest
from starlette.testclient import TestClient

from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots
from tests.conftest import API_KEY
from tests.serving.test_service import request_for

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ANONYMOUS = {"Authorization": ""}
NFC = unicodedata.normalize("NFC", "Zoë Müller")
IDS = ["L 1", "L%201", "L%25201", "a/b", "a%2Fb", "x/card", "/lead", "100%", "ü/ß?#&=+;", NFC,
       unicodedata.normalize("NFD", NFC)]


@pytest.fixture(scope="module")
def client(trained, demo_dir):
    """The service in process, with two scores recorded for each odd id."""
    from leadscore.serving.service import LeadScoring

    export = read_export(demo_dir)
    as_of = export.data_end
    source = scoring_snapshots(export, as_of)["lead_id"].iloc[40:41].tolist()
    with TestClient(LeadScoring.to_asgi(), headers=AUTH) as c:
        for days in (20, 0):
            body = request_for(export, source * len(IDS), as_of - pd.Timedelta(days=days))
            for item, lead_id in zip(body["leads"], IDS):
                item["lead"]["lead_id"] = lead_id
            resp = c.post("/score", json=body)
            assert resp.status_code == 200, resp.text
        yield c


def _path(lead_id: str, verb: str) -> str:
    return f"/leads/{quote(lead_id, safe='')}/{verb}"


@pytest.mark.parametrize("lead_id", IDS)
def test_every_lead_route_answers_for_an_id_that_needs_encoding(client, lead_id):
    history = client.get(_path(lead_id, "history"))
    assert history.status_code == 200, history.text
    assert history.json()["lead_id"] == lead_id and len(history.json()["entries"]) == 2
    change = client.get(_path(lead_id, "change"))
    assert change.status_code == 200, change.text
    card = client.get(_path(lead_id, "card"))
    assert card.status_code == 200 and html.escape(lead_id) in card.text
    link = client.post(_path(lead_id, "card-link")).json()["url"]
    page = client.get(link, headers=ANONYMOUS)
    assert page.status_code == 200, (link, page.text[:300])
    assert html.escape(lead_id) in page.text


def test_ids_differing_only_in_normalisation_are_two_leads(client):
    nfd = unicodedata.normalize("NFD", NFC)
    assert NFC != nfd
    first = client.get(_path(NFC, "history")).json()["entries"]
    client.post("/score", json=_rescore(client, nfd))
    assert len(client.get(_path(NFC, "history")).json()["entries"]) == len(first)


def _rescore(client, lead_id):
    # the card form's lead, re-sent under another id: only that id's history grows
    entries = client.get(_path(lead_id, "history")).json()["entries"]
    assert entries
    return {"leads": [{"lead": {"lead_id": lead_id, "created_at": "2024-01-01T00:00:00"}, "activities": []}],
            "as_of": "2024-06-01T00:00:00"}


def _variants(lead_id: str) -> set[str]:
    """Spellings of the card path an attacker could try with a link's query."""
    once = quote(lead_id, safe="")
    forms = {
        once,
        quote(once, safe=""),  # double-encoded
        quote(lead_id, safe="/"),  # "/" raw instead of %2F
        once.replace("%25", "%"),  # %25 decoded by hand
        quote(unicodedata.normalize("NFD", lead_id), safe=""),
        quote(unicodedata.normalize("NFC", lead_id), safe=""),
        quote(unicodedata.normalize("NFKC", lead_id), safe=""),
        once.lower(), once.upper(),
        quote(lead_id.replace(" ", "+"), safe=""), lead_id.replace(" ", "+"),
        once + "%2F", "%2F" + once, once + "/x", "x/" + once,
    }
    return {f for f in forms if f and "?" not in f and "#" not in f}  # raw ? or # would end the path


@pytest.mark.parametrize("lead_id", IDS)
def test_no_spelling_of_a_links_path_opens_another_lead(client, lead_id):
    link = client.post(_path(lead_id, "card-link")).json()["url"]
    query = link.split("?", 1)[1]
    for form in _variants(lead_id):
        resp = client.get(f"/leads/{form}/card?{query}", headers=ANONYMOUS)
        seen = unquote(form)  # what the server decodes, once
        if seen == lead_id:
            assert resp.status_code == 200 and html.escape(lead_id) in resp.text, form
        else:
            assert resp.status_code == 401, (lead_id, form, resp.status_code)


def test_the_measured_replay_of_L_percent_25_201_is_refused(client):
    link = client.post(_path("L 1", "card-link")).json()["url"]
    assert link.startswith("/leads/L%201/card?")
    query = link.split("?", 1)[1]
    assert client.get(f"/leads/L%25201/card?{query}", headers=ANONYMOUS).status_code == 401
    assert client.get(f"/leads/L%201/card?{query}", headers=ANONYMOUS).status_code == 200


def test_a_link_opens_only_the_card_and_only_until_it_expires(client):
    from leadscore.serving.security import card_link

    link = client.post(_path("a/b", "card-link")).json()["url"]
    query = link.split("?", 1)[1]
    for verb in ("history", "change"):
        assert client.get(f"{_path('a/b', verb)}?{query}", headers=ANONYMOUS).status_code == 401
    assert client.get(f"/leads/a/card?{query}", headers=ANONYMOUS).status_code == 401  # a prefix of the id
    assert client.get(f"/leads/b/card?{query}", headers=ANONYMOUS).status_code == 401
    # signed with another deployment's key, or expired: refused
    assert client.get(card_link(b"another-deployment", "a/b", int(time.time()) + 600), headers=ANONYMOUS).status_code == 401
    expired = link.split("?", 1)[0] + "?expires=1&" + query.split("&", 1)[1]
    assert client.get(expired, headers=ANONYMOUS).status_code == 401


def test_logs_pseudonymise_the_whole_id_slashes_and_all():
    from leadscore.serving.security import safe_path

    for path in ("/leads/ü/ß/x/card", "/leads/a/b/history", "/leads/a/b"):
        logged = safe_path(path, b"k")
        assert logged.startswith("/leads/~") and "ü" not in logged and "/b" not in logged.replace("/card", ""), logged
    assert safe_path("/leads/a/b/card", b"k").endswith("/card")
