"""Bounded work per request (issue 17): caps on what one request may ask for, and model work
abandoned at its deadline instead of left running.

Measured on main before this: two 1,000-lead what-if requests kept the model threads busy for
~30 s after their own deadlines had passed, and every other caller got the rules meanwhile. The
caps are 422s naming the field, the cap and the setting; the deadline is a cancellation token the
model threads check between chunks of leads and before each lead's what-if.

The caps go through the service app (its 422 handler, its ledger); the abandonment through
``ScoringCore`` with the trained champion, as ``test_faults`` does. Timings only order events
(which lead began after a request was answered); what is asserted are counts.
"""

import asyncio
import os
import threading
import time

import pytest
from starlette.testclient import TestClient

from leadscore.config.settings import SettingsError, get_settings
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots
from leadscore.serving.schemas import ScoreRequest
from tests.conftest import API_KEY
from tests.serving.test_faults import _core, _score, _settings
from tests.serving.test_service import request_for

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_ACTIVITIES = 100
MAX_WHAT_IF_LEADS = 2


@pytest.fixture(scope="module")
def export(demo_dir):
    return read_export(demo_dir)


def _open_leads(export, n: int, min_activities: int = 0) -> list[str]:
    """``n`` lead ids open at the export's end, each with at least ``min_activities`` activities."""
    ids = scoring_snapshots(export, export.data_end)["lead_id"]
    counts = export.activities["lead_id"].value_counts()
    chosen = [i for i in ids if counts.get(i, 0) >= min_activities][:n]
    assert len(chosen) == n
    return chosen


# --- caps: refused before anything is scored


@pytest.fixture(scope="module")
def client(trained, tmp_path_factory):
    """The service in process with small caps and a ledger of its own."""
    folder = tmp_path_factory.mktemp("work-bounds")
    env = {"LEADSCORE_MAX_REQUEST_ACTIVITIES": str(MAX_ACTIVITIES), "LEADSCORE_MAX_WHAT_IF_LEADS": str(MAX_WHAT_IF_LEADS),
           "LEADSCORE_LEDGER_URL": f"sqlite:///{folder / 'ledger.db'}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from leadscore.serving.service import LeadScoring

    try:
        with TestClient(LeadScoring.to_asgi(), headers=AUTH) as c:
            yield c
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _body_with(export, tag: str, n_leads: int, activities_each: int, **extra) -> dict:
    """``n_leads`` open leads, each sent with exactly ``activities_each`` of its activities, their ids
    tagged (so that each test's leads have a ledger history of their own)."""
    ids = _open_leads(export, n_leads, min_activities=activities_each)
    body = request_for(export, ids, export.data_end)
    for item in body["leads"]:
        item["activities"] = item["activities"][:activities_each]
        item["lead"]["lead_id"] = f"{tag}-{item['lead']['lead_id']}"
    return {**body, **extra}


def _only_error(resp) -> dict:
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["detail"]
    assert set(error) == {"loc", "msg", "type"}  # as every 422: no input, no ctx
    return error


def _nothing_recorded(client, body) -> None:
    for item in body["leads"]:
        assert client.get(f"/leads/{item['lead']['lead_id']}/history").status_code == 404


def test_too_many_activities_over_all_leads_is_a_422_naming_field_cap_setting_and_count(client, export):
    body = _body_with(export, "acts", 3, 40)  # 120 activities
    error = _only_error(client.post("/score", json=body))
    assert error["loc"] == ["body", "leads"]
    msg = error["msg"]
    assert "activities" in msg and f"at most {MAX_ACTIVITIES}" in msg and "found 120" in msg and "3 leads" in msg
    assert "LEADSCORE_MAX_REQUEST_ACTIVITIES" in msg
    sent = {v for item in body["leads"] for v in item["lead"].values() if isinstance(v, str) and len(v) >= 3}
    assert not any(v in msg for v in sent)  # counts only, never a lead's values
    _nothing_recorded(client, body)


def test_at_the_activity_cap_is_scored(client, export):
    body = _body_with(export, "at-cap", 2, MAX_ACTIVITIES // 2)
    resp = client.post("/score", json=body)
    assert resp.status_code == 200, resp.text
    assert [r["scorer"] for r in resp.json()] == ["model", "model"]


def test_a_what_if_request_with_too_many_leads_is_a_422_and_without_what_if_it_is_scored(client, export):
    body = _body_with(export, "what-if", MAX_WHAT_IF_LEADS + 1, 1, what_if=True)
    error = _only_error(client.post("/score", json=body))
    assert error["loc"] == ["body", "what_if"]
    msg = error["msg"]
    assert f"at most {MAX_WHAT_IF_LEADS} leads" in msg and f"found {MAX_WHAT_IF_LEADS + 1}" in msg
    assert "LEADSCORE_MAX_WHAT_IF_LEADS" in msg and "what_if" in msg
    _nothing_recorded(client, body)
    without = client.post("/score", json={**body, "what_if": False})
    assert without.status_code == 200 and all(r["what_if"] is None for r in without.json())
    at_cap = {**body, "leads": body["leads"][:MAX_WHAT_IF_LEADS]}
    assert client.post("/score", json=at_cap).status_code == 200


def test_the_card_form_keeps_the_activity_cap(client, export):
    body = _body_with(export, "card", 1, MAX_ACTIVITIES + 1)
    error = _only_error(client.post("/card", json=body["leads"][0]))
    assert error["loc"] == ["body", "activities"] and f"found {MAX_ACTIVITIES + 1}" in error["msg"]
    _nothing_recorded(client, body)


@pytest.mark.parametrize("name, value", [("MAX_WHAT_IF_LEADS", "0"), ("MAX_WHAT_IF_LEADS", "1001"),
                                         ("MAX_REQUEST_ACTIVITIES", "99"), ("MAX_REQUEST_ACTIVITIES", "lots")])
def test_a_cap_out_of_its_range_is_refused_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(f"LEADSCORE_{name}", value)
    with pytest.raises(SettingsError, match=f"LEADSCORE_{name}: expected an integer"):
        get_settings()


# --- past the deadline, the model stops


def _requests(export, n: int, **extra) -> ScoreRequest:
    return ScoreRequest.model_validate({**request_for(export, _open_leads(export, n), export.data_end), **extra})


def test_what_if_past_its_deadline_is_abandoned_and_the_next_caller_gets_the_model(trained, tmp_path, export, monkeypatch):
    """As many heavy what-if requests as there are model threads, each far more work than its
    deadline allows: answered by the rules, their threads stop within the lead each was on, and a
    one-lead request right after is the model's. Before the fix the threads ran on through every
    lead (~8 s here) and the one-lead request waited behind them into the rules."""
    from leadscore.models import whatif

    core = _core(_settings(tmp_path, deadline_ms=1000, max_what_if_leads=1000))
    assert core.model is not None
    threads = core._model_pool._max_workers
    heavy = _requests(export, 300, what_if=True)  # ~7 ms of what-if per lead: ~2 s alone, ~8 s all together
    light = _requests(export, 1)
    real, begun, lock = whatif.what_would_change, [], threading.Lock()

    def counted(*args, **kwargs):
        with lock:
            begun.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(whatif, "what_would_change", counted)

    async def heavy_then_light():
        answers = await asyncio.gather(*(core.score(heavy) for _ in range(threads)))
        answered = time.monotonic()  # every heavy request's deadline has passed
        return answers, answered, await core.score(light)

    try:
        answers, answered, after = asyncio.run(heavy_then_light())
        assert all(s.out.scorer == "rules" and s.out.fallback_reason.startswith("deadline:") for a in answers for s in a)
        assert after[0].out.scorer == "model", after[0].out.fallback_reason
    finally:
        core._model_pool.shutdown(wait=True)  # waits for whatever the abandoned requests still do
    late = sum(t > answered for t in begun)
    assert late <= threads, f"{late} what-if leads begun after their requests were answered"
    assert len(begun) < threads * len(heavy.leads)


def test_scoring_past_its_deadline_stops_within_a_chunk(trained, tmp_path, export, monkeypatch):
    """A slow model (2 ms a lead, 1,000 leads): the request gets the rules at its deadline and the
    model computes features for at most one more chunk of leads, not the remaining ~900."""
    from leadscore.serving.core import MODEL_CHUNK

    core = _core(_settings(tmp_path, deadline_ms=200))
    body = request_for(export, _open_leads(export, 250), export.data_end)
    body["leads"] = [{**item, "lead": {**item["lead"], "lead_id": f"{item['lead']['lead_id']}-{copy}"}}
                     for copy in range(4) for item in body["leads"]]
    request = ScoreRequest.model_validate(body)
    real, begun, lock = core.model.online.features, [], threading.Lock()

    def slow(*args, **kwargs):
        with lock:
            begun.append(time.monotonic())
        time.sleep(0.002)
        return real(*args, **kwargs)

    monkeypatch.setattr(core.model.online, "features", slow)
    try:
        results = _score(core, request)
        answered = time.monotonic()
        assert all(s.out.scorer == "rules" and "200 ms deadline" in s.out.fallback_reason for s in results)
    finally:
        core._model_pool.shutdown(wait=True)
    late = sum(t > answered for t in begun)
    assert late <= MODEL_CHUNK, f"{late} leads' features computed after the request was answered"
    assert len(begun) < len(request.leads)


def test_work_within_the_deadline_is_the_model_s_as_before(trained, tmp_path, export):
    """Chunked scoring gives what one batch gave: every lead, in order, by the model."""
    from leadscore.serving import live

    core = _core(_settings(tmp_path, deadline_ms=60_000))
    request = _requests(export, 100, what_if=True)
    scored = _score(core, request)
    assert [s.out.lead_id for s in scored] == [x.lead.lead_id for x in request.leads]
    assert all(s.out.scorer == "model" for s in scored)
    leads = [live.inputs(x) for x in request.leads]
    batch, _ = live.score_model(core.model, leads, live.micros(request.as_of), request.top_k, request.language)
    assert [s.out.probability for s in scored] == [r.probability for r in batch]
    assert any(s.out.what_if is not None for s in scored)
