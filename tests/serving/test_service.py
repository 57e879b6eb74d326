"""The API in process: the contract, parity with batch scoring, keys, strict input, ledger, card."""

import json
import logging
import time

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from leadscore.cli import app as cli
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots
from tests.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def client(trained):
    # One ASGI app per process: BentoML registers its metrics once.
    from leadscore.serving.service import LeadScoring

    with TestClient(LeadScoring.to_asgi(), headers=AUTH) as c:
        yield c


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items() if pd.notna(v)})
    return out


def request_for(export, lead_ids, as_of) -> dict:
    leads = export.leads.set_index("lead_id")
    body = []
    for lead_id in lead_ids:
        lead = _records(leads.loc[[lead_id]].reset_index())[0]
        acts = export.activities[export.activities["lead_id"] == lead_id].drop(columns="lead_id")
        body.append({"lead": lead, "activities": _records(acts)})
    return {"leads": body, "as_of": as_of.isoformat()}


def _body(demo_dir, n=3, days_before_end=30, skip=0):
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=days_before_end)
    ids = scoring_snapshots(export, as_of)["lead_id"].iloc[skip:skip + n].tolist()
    return export, as_of, ids, request_for(export, ids, as_of)


def test_health_is_open_and_everything_else_needs_a_key(client):
    anonymous = {"Authorization": ""}
    assert client.get("/livez", headers=anonymous).status_code == 200
    assert client.get("/readyz", headers=anonymous).status_code == 200
    for method, path in [("post", "/score"), ("get", "/metadata"), ("get", "/leads/L1/history"), ("post", "/reload"),
                         ("get", "/leads/L1/card"), ("get", "/card")]:
        resp = getattr(client, method)(path, headers=anonymous)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer", (path, resp.text)
    assert client.get("/metadata", headers={"Authorization": "Bearer wrong-key"}).status_code == 401
    assert client.get("/metadata", headers={"Authorization": f"Basic {API_KEY}"}).status_code == 401


def test_every_configured_key_works(client):
    import os

    for key in os.environ["LEADSCORE_API_KEYS"].split(","):
        assert client.get("/metadata", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_score_contract(client, demo_dir, trained):
    _, _, ids, body = _body(demo_dir, 5)
    resp = client.post("/score", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [r["lead_id"] for r in out] == ids  # in request order
    for r in out:
        assert r["status"] == "scored" and r["not_scored_reason"] is None
        assert 0 < r["probability"] < 1 and 1 <= r["score"] <= 99 and r["grade"] in "ABCD"
        assert r["scorer"] == "model" and r["model_version"] == trained["registered"]["version"]
        assert r["fallback_reason"] is None
        assert 1 <= len(r["reasons"]) <= 6  # up to 3 raising and 3 lowering the score
        assert all({"feature", "value", "effect", "text", "group"} == set(x) for x in r["reasons"])
        effects = [x["effect"] for x in r["reasons"]]
        ups = [e for e in effects if e > 0]
        assert effects[:len(ups)] == sorted(ups, reverse=True) and len(ups) <= 3 and len(effects) - len(ups) <= 3
        assert r["fit_grade"] in "ABCD" and 1 <= r["interest_level"] <= 4
        assert r["matrix_cell"] == f"{r['fit_grade']}{r['interest_level']}"
        assert r["recommendation"] in ("hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention")
        assert r["warnings"] == []


def test_language_top_k_and_what_if_per_request(client, demo_dir, trained):
    _, _, ids, body = _body(demo_dir, 8)
    en = client.post("/score", json=body).json()
    de = client.post("/score", json={**body, "language": "de", "what_if": True, "top_k": 1}).json()
    for a, b in zip(en, de):
        assert a["probability"] == b["probability"] and len(b["reasons"]) <= 2
        assert a["recommendation"] == b["recommendation"] and a["recommendation_text"] != b["recommendation_text"]
        assert a["what_if"] is None  # only when asked
        w = b["what_if"]
        assert w is None or w["probability"] is None or w["probability"] >= trained["model"].sales_ready > b["probability"]
        assert w is None or all(lv["probability"] > b["probability"] and lv["grade"] in "ABCD" for lv in w["levers"])
    german = " ".join(x["text"] for r in de for x in r["reasons"])
    assert any(word in german for word in ("Tage", "Lead", "Unternehmensgröße", "Hierarchieebene", "Branche"))
    bad = client.post("/score", json={**body, "language": "fr"})
    assert bad.status_code == 422 and "language" in bad.text


def test_api_equals_batch_scoring(client, demo_dir, tmp_path):
    """One feature definition: /score and `leadscore score` agree to 1e-9 at the same as_of."""
    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=45)
    out = tmp_path / "batch.csv"
    result = CliRunner().invoke(cli, ["score", "--data", str(demo_dir), "--as-of", as_of.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out).set_index("lead_id")
    # the most active leads, where a skew would show
    counts = export.activities[export.activities["lead_id"].isin(batch.index)]["lead_id"].value_counts()
    ids = counts.index[:60].tolist() + batch.index.difference(counts.index)[:5].tolist()
    resp = client.post("/score", json=request_for(export, ids, as_of))
    assert resp.status_code == 200, resp.text
    api = pd.DataFrame(resp.json()).set_index("lead_id")
    np.testing.assert_allclose(api["probability"], batch.loc[ids, "probability"], rtol=0, atol=1e-9)
    assert (api["grade"] == batch.loc[ids, "grade"]).all()


def test_live_rules_equal_batch_rules(trained, demo_dir, params):
    """The fallback's live path (online features) gives the batch rules' points, grades and reasons."""
    from leadscore.features.online import OnlineFeatures
    from leadscore.models.base import score_leads
    from leadscore.models.policy import rule_scorer
    from leadscore.serving import live
    from leadscore.serving.schemas import ScoreRequest

    export, as_of, ids, body = _body(demo_dir, 80, days_before_end=20)
    rules = rule_scorer(params.features)
    request = ScoreRequest.model_validate(body)
    leads = [live.inputs(x) for x in request.leads]
    online, _ = live.score_rules(rules, OnlineFeatures(rules.spec), leads, live.micros(request.as_of), 3, "en")
    snaps = pd.DataFrame({"lead_id": ids, "as_of": [as_of] * len(ids)}).astype({"as_of": "datetime64[ns]"})
    batch = score_leads(rules, snaps, export.leads, export.activities)
    for a, b in zip(online, batch):
        assert (a.lead_id, a.score, a.grade, a.sales_ready) == (b.lead_id, b.score, b.grade, b.sales_ready)
        assert a.probability == pytest.approx(b.probability, abs=1e-12)
        assert [r.text for r in a.reasons] == [r.text for r in b.reasons]


def test_activities_after_as_of_are_ignored(client, demo_dir):
    _, as_of, _, body = _body(demo_dir, 1)
    first = client.post("/score", json=body).json()[0]["probability"]
    body["leads"][0]["activities"].append({"occurred_at": as_of.isoformat(), "activity_type": "demo_request"})
    body["leads"][0]["activities"].append({"occurred_at": (as_of + pd.Timedelta(days=1)).isoformat(), "activity_type": "trial_signup"})
    assert client.post("/score", json=body).json()[0]["probability"] == first


def _lead(**extra):
    return {"leads": [{"lead": {"lead_id": "X1", "created_at": "2025-01-01T00:00:00", **extra}, "activities": []}]}


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b["leads"][0]["lead"].pop("lead_id"), "lead_id"),
        (lambda b: b["leads"][0]["lead"].update(lead_id="   "), "lead_id"),
        (lambda b: b["leads"][0]["lead"].update(created_at="not a date"), "created_at"),
        (lambda b: b["leads"][0]["lead"].update(created_at="2025-02-30T00:00:00"), "created_at"),
        (lambda b: b["leads"][0]["lead"].update(created_at="3025-01-01T00:00:00"), "created_at"),
        (lambda b: b["leads"][0]["lead"].update(employees=-5), "employees"),
        (lambda b: b["leads"][0]["lead"].update(employees=1e300), "employees"),
        (lambda b: b["leads"][0]["lead"].update(annual_revenue=10**400), "annual_revenue"),
        (lambda b: b["leads"][0]["lead"].update(budget_confirmed=10**20), "budget_confirmed"),
        (lambda b: b["leads"][0]["lead"].update(crm_system={"nested": 1}), "crm_system"),
        (lambda b: b["leads"][0]["lead"].update(shoe_size=44), "shoe_size"),
        (lambda b: b["leads"][0]["activities"].append({"occurred_at": "2025-01-01T00:00:00"}), "activity_type"),
        (lambda b: b["leads"][0]["activities"].append({"occurred_at": "yesterday", "activity_type": "x"}), "occurred_at"),
        (lambda b: b["leads"][0]["activities"].append({"occurred_at": "2025-01-01", "activity_type": "x", "pickle": 1}), "pickle"),
        (lambda b: b.update(leads=[]), "leads"),
        (lambda b: b.update(top_k=-1), "top_k"),
        (lambda b: b.update(colour="red"), "colour"),
        (lambda b: b["leads"].append(json.loads(json.dumps(b["leads"][0]))), "lead_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, mutate, field):
    body = _lead()
    mutate(body)
    resp = client.post("/score", content=json.dumps(body), headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert field in resp.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["employees", "budget_confirmed"])
def test_nan_and_infinity_literals_are_422(client, literal, field):
    raw = json.dumps(_lead(**{field: 0})).replace(f'"{field}": 0', f'"{field}": {literal}')
    resp = client.post("/score", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 422 and field in resp.text, resp.text


def test_wrong_content_type_is_415_and_big_body_is_413(client):
    body = json.dumps(_lead())
    for kind in ("application/octet-stream", "application/python-pickle", "multipart/form-data; boundary=x", "text/plain"):
        resp = client.post("/score", content=body, headers={"content-type": kind})
        assert resp.status_code == 415 and "application/json" in resp.text, (kind, resp.text)
    huge = json.dumps({"leads": [{"lead": {"lead_id": "X", "created_at": "2025-01-01", "industry": "x" * 11_000_000}}]})
    resp = client.post("/score", content=huge, headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text[:200]


def test_streamed_body_over_the_cap_is_413():
    """Without Content-Length the gate counts bytes as they arrive."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from leadscore.serving.security import Gate

    async def echo(request):
        return JSONResponse({"n": len(await request.body())})

    app = Gate(Starlette(routes=[Route("/x", echo, methods=["POST"])]), keys=lambda: ["k"], secret=lambda: b"s",
               max_bytes=lambda: 1000)
    with TestClient(app, headers={"Authorization": "Bearer k", "content-type": "application/json"}) as c:
        assert c.post("/x", content=(b"x" for _ in range(10))).json() == {"n": 10}
        assert c.post("/x", content=(b"x" * 100 for _ in range(20))).status_code == 413


def test_unknown_categories_and_activity_types_are_warnings(client, demo_dir):
    _, as_of, _, body = _body(demo_dir, 1)
    lead = body["leads"][0]
    lead["lead"]["industry"] = "underwater basket weaving"
    lead["activities"].append({"occurred_at": (as_of - pd.Timedelta(days=2)).isoformat(), "activity_type": "Hologram_Call"})
    resp = client.post("/score", json=body)
    assert resp.status_code == 200, resp.text
    warnings = resp.json()[0]["warnings"]
    assert any("industry" in w and "underwater basket weaving" in w for w in warnings), warnings
    assert any("hologram_call" in w and "1×" in w for w in warnings), warnings


def test_do_not_profile_is_not_scored_and_not_recorded(client, demo_dir, tmp_path):
    _, _, ids, body = _body(demo_dir, 2, skip=40)
    body["leads"][0]["lead"]["do_not_profile"] = True
    out = client.post("/score", json={**body, "language": "de"}).json()
    assert out[0]["status"] == "not_scored" and "Profiling" in out[0]["not_scored_reason"]
    assert out[0]["score"] is None and out[0]["probability"] is None and out[0]["reasons"] == []
    assert out[1]["status"] == "scored" and out[1]["score"] is not None
    assert client.get(f"/leads/{ids[0]}/history").status_code == 404
    assert client.get(f"/leads/{ids[1]}/history").status_code == 200


def test_scores_are_recorded_with_trend_history_and_change(client, demo_dir, trained):
    from leadscore.serving.ledger import Ledger

    export, as_of, _, body = _body(demo_dir, 1, days_before_end=60, skip=7)
    ids = ["TREND-1"]  # a lead no other test scores
    body["leads"][0]["lead"]["lead_id"] = ids[0]
    first = client.post("/score", json=body).json()[0]
    assert first["previous_score"] is None and first["trend"] is None
    # Later, the lead did a lot: score again at a later as_of with new activities.
    later = as_of + pd.Timedelta(days=10)
    acts = body["leads"][0]["activities"]
    acts += [{"occurred_at": (later - pd.Timedelta(hours=h)).isoformat(), "activity_type": t, "channel": "web"}
             for h, t in [(5, "pricing_page_view"), (4, "demo_request"), (3, "pricing_page_view"), (2, "webinar_attended")]]
    second = client.post("/score", json={**body, "as_of": later.isoformat()}).json()[0]
    assert second["previous_score"] == first["score"]
    assert second["score_change"] == second["score"] - first["score"]
    assert second["trend"] == ("improving" if second["score_change"] >= 3 else "declining" if second["score_change"] <= -3 else "steady")
    history = client.get(f"/leads/{ids[0]}/history").json()
    assert [e["score"] for e in history["entries"]][-2:] == [first["score"], second["score"]]
    change = history["change"]
    assert change["decomposed"] and change["model_change"] == 0 and change["data_change"] == change["total"]
    assert change["total"] == second["score"] - first["score"]
    assert change["data_drivers"] and change["text"]
    via_route = client.get(f"/leads/{ids[0]}/change", params={"lang": "de"}).json()
    assert via_route["total"] == change["total"] and via_route["text"] != change["text"]
    # The ledger holds the pseudonym, never the id.
    import os

    ledger = Ledger(os.environ["LEADSCORE_LEDGER_URL"])
    with ledger._engine.connect() as conn:
        from sqlalchemy import text

        rows = [dict(r._mapping) for r in conn.execute(text("select * from score_ledger"))]
    assert rows and not any(ids[0] in json.dumps(r, default=str) for r in rows)
    assert not any("@" in json.dumps(r, default=str) for r in rows)  # no e-mail address either
    assert client.get("/leads/NOBODY/history").status_code == 404


def test_card_link_opens_the_card_without_a_key_until_it_expires(client, demo_dir):
    _, _, ids, body = _body(demo_dir, 1, skip=3)
    client.post("/score", json=body)
    link = client.post(f"/leads/{ids[0]}/card-link", params={"lang": "de"}).json()
    anonymous = {"Authorization": ""}
    page = client.get(link["url"], headers=anonymous)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors" in page.headers["content-security-policy"] and ids[0] in page.text
    assert client.get(link["url"].replace("sig=", "sig=x"), headers=anonymous).status_code == 401
    other = link["url"].replace(ids[0], "L999999")
    assert client.get(other, headers=anonymous).status_code == 401  # a link opens one lead only
    from leadscore.serving.security import card_link

    expired = card_link(b"anything", ids[0], int(time.time()) - 1)
    assert client.get(expired, headers=anonymous).status_code == 401


def test_card_form_and_pasted_lead(client, demo_dir):
    _, _, ids, body = _body(demo_dir, 1, skip=11)
    form = client.get("/card", params={"lang": "de"})
    assert form.status_code == 200 and "<textarea" in form.text
    card = client.post("/card", json={**body["leads"][0], "language": "en"})
    assert card.status_code == 200 and "<svg" in card.text and ids[0] in card.text
    assert 'id="account"' in card.text and "account score" in card.text
    bad = client.post("/card", json={"lead": {"lead_id": "X"}, "activities": []})
    assert bad.status_code == 422 and "created_at" in bad.text


def test_metadata_names_model_features_thresholds_and_window(client, trained):
    meta = client.get("/metadata").json()
    model = trained["model"]
    assert meta["scorer"] == "model" and meta["model_version"] == trained["registered"]["version"]
    assert meta["model_origin"] == "registry" and len(meta["model_sha256"]) == 64
    assert [f["name"] for f in meta["features"]] == model.spec.names
    assert meta["thresholds"]["sales_ready"] == pytest.approx(model.sales_ready)
    assert meta["training_window"]["train_period"] == model.info["train_period"]
    from leadscore.config.settings import Settings

    # The caps an integrator must respect, as the service enforces them (on main not listed anywhere).
    defaults = Settings()
    assert meta["limits"] == {k: getattr(defaults, k) for k in ("max_request_bytes", "max_request_activities",
                                                                "max_what_if_leads", "max_in_flight", "body_timeout_s")}


def test_logs_are_json_without_ids_emails_or_keys(client, demo_dir, caplog):
    _, _, ids, body = _body(demo_dir, 3, skip=20)
    emails = [x["lead"].get("email") for x in body["leads"] if x["lead"].get("email")]
    logger = logging.getLogger("leadscore.serving")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    from pythonjsonlogger.json import JsonFormatter

    handler = Keep()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        client.post("/score", json=body)
        client.get(f"/leads/{ids[0]}/history")
        client.get(f"/leads/{ids[0]}/card")
        client.post("/score", json={"leads": []}, headers={"Authorization": "Bearer not-a-key"})
    finally:
        logger.removeHandler(handler)
    assert len(records) >= 4
    text = "\n".join(records)
    for line in records:
        json.loads(line)
    assert emails and not any(e in text for e in emails)
    assert not any(i in text for i in ids) and API_KEY not in text and "not-a-key" not in text
    assert "/leads/~" in text  # the path is logged with the pseudonym


def test_openapi_lists_routes_with_examples_and_the_bearer_scheme(client):
    spec = client.get("/docs.json").json()
    for path in ("/score", "/metadata", "/leads/{lead_id}/history", "/leads/{lead_id}/card", "/card"):
        assert path in spec["paths"], path
    assert "HTTPBearer" in json.dumps(spec["components"].get("securitySchemes", {}))
    assert "examples" in json.dumps(spec["components"]["schemas"]["ScoreRequest"])


def test_leads_of_one_account_are_rolled_up(client, demo_dir):
    _, as_of, _, body = _body(demo_dir, 3, skip=60)
    leads = body["leads"]
    for i, (title, email) in enumerate([("CFO", "a.b@acme-werke.de"), ("Werkstudentin", "c.d@acme-werke.de"),
                                        ("Geschäftsführer", "e.f@other-firm.de")]):
        leads[i]["lead"].update(job_title=title, email=email, lead_id=f"ACC-{i}")
        leads[i]["activities"].append({"occurred_at": (as_of - pd.Timedelta(days=3)).isoformat(),
                                       "activity_type": "webinar_attendance", "channel": "event"})
    out = client.post("/score", json=body).json()
    acme, other = out[0]["account"], out[2]["account"]
    assert acme == out[1]["account"] and acme["key"] == "acme-werke.de" and acme["n_leads"] == 2
    p = [out[0]["probability"], out[1]["probability"]]
    assert acme["probability"] == pytest.approx(1 - (1 - p[0]) * (1 - p[1]), abs=1e-12)  # noisy-OR
    assert {"decision_maker", "budget_holder"} <= set(acme["roles_covered"]) and "user" in acme["roles_missing"]
    assert other["key"] == "other-firm.de" and other["n_leads"] == 1 and "decision_maker" in other["roles_covered"]
    assert "budget holder" in other["coverage_text"].lower()
    # The card from the ledger rolls up everything served for the account, also across requests.
    single = {**body, "leads": [leads[1]]}
    client.post("/score", json=single)
    card = client.get("/leads/ACC-0/card").text
    assert 'id="account"' in card and "acme-werke.de: 2 lead(s)" in card
    assert f"account score {acme['score']}" in card and "user" in card.lower()
