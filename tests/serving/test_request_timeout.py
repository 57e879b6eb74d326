"""A request leaves nothing behind once it is answered: no timer, no future, no span kept alive for
BentoML's 120 s timeout (serving.request_timeout), and the loaded libraries are out of the garbage
collector's way (serving.core.settle_heap)."""

from __future__ import annotations

import asyncio
import gc
import json

import httpx
import pytest

from leadscore.serving.request_timeout import RequestTimeout, replace_bentoml_timeout

REQUESTS = 40


def _pending_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers the loop still has to run (the default loop keeps them in ``_scheduled``)."""
    return sum(1 for handle in loop._scheduled if not handle.cancelled())


async def _drive(app, path: str = "/livez", n: int = REQUESTS) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [(await client.get(path)).status_code for _ in range(n)]


def test_no_timer_outlives_its_request_in_the_served_app():
    """On main, BentoML's TimeoutMiddleware left one live timer (with its future, context and span)
    per request for 120 s: 40 requests, 40 timers still pending after every answer was out."""
    from leadscore.serving.service import LeadScoring

    served = LeadScoring.to_asgi()

    async def run():
        loop = asyncio.get_running_loop()
        before = _pending_timers(loop)
        statuses = await _drive(served)
        return statuses, _pending_timers(loop) - before

    statuses, left = asyncio.run(run())
    assert statuses == [200] * REQUESTS
    assert left == 0, f"{left} timers still pending after {REQUESTS} answered requests"


def test_the_served_app_keeps_bentomls_timeout_value():
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    from leadscore.serving.service import LeadScoring

    served = LeadScoring.to_asgi().app
    classes = [m.cls for m in served.user_middleware]
    assert TimeoutMiddleware not in classes and RequestTimeout in classes
    ours = next(m for m in served.user_middleware if m.cls is RequestTimeout)
    assert ours.kwargs["timeout"] == LeadScoring.config["traffic"]["timeout"]


def test_replacing_after_the_stack_is_built_is_refused():
    from leadscore.serving.service import LeadScoring

    served = LeadScoring.to_asgi()
    asyncio.run(_drive(served, n=1))
    with pytest.raises(RuntimeError, match="middleware stack"):
        replace_bentoml_timeout(served.app)


async def _slow(scope, receive, send, *, before: float = 0.0, after: float = 0.0):
    await asyncio.sleep(before)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await asyncio.sleep(after)
    await send({"type": "http.response.body", "body": b"ok"})


def _get(app, path: str) -> httpx.Response:
    """One GET through ``app``, in process."""

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(run())


def test_no_answer_in_time_is_a_504_naming_the_limit():
    async def app(scope, receive, send):
        await _slow(scope, receive, send, before=5.0)

    resp = _get(RequestTimeout(app, 0.05), "/score")
    assert resp.status_code == 504
    assert json.loads(resp.content)["detail"] == \
        "request: expected an answer within 0.05 s (traffic.timeout), found none by then"


def test_an_answer_that_has_begun_is_not_cut_off():
    """As BentoML's: the limit is on the start of the answer, not on its end."""

    async def app(scope, receive, send):
        await _slow(scope, receive, send, after=0.2)

    resp = _get(RequestTimeout(app, 0.05), "/")
    assert resp.status_code == 200 and resp.content == b"ok"


def test_the_apps_own_timeout_error_is_not_a_504():
    async def app(scope, receive, send):
        raise TimeoutError("the app's own")

    async def run():
        await RequestTimeout(app, 10)({"type": "http"}, None, None)

    with pytest.raises(TimeoutError, match="the app's own"):
        asyncio.run(run())


def test_the_worker_settles_its_heap_once_loaded(monkeypatch):
    """The service freezes what it has loaded, so a full collection no longer walks ~0.5 million
    objects with the loop stopped (~0.2 s every few seconds under load, on main)."""
    from leadscore.serving import core, service

    calls = []
    monkeypatch.setattr(service, "configure_logging", lambda: None)
    monkeypatch.setattr(service, "mlflow_fails_fast", lambda: None)
    monkeypatch.setattr(service, "ScoringCore", lambda settings: calls.append("core") or object())
    monkeypatch.setattr(service, "settle_heap", lambda: calls.append("settled"))
    service.LeadScoring.inner()
    assert calls == ["core", "settled"]

    frozen = gc.get_freeze_count()
    try:
        core.settle_heap()
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()  # the test process goes on collecting as before


def test_a_reload_that_changes_the_model_settles_the_heap_again(monkeypatch):
    from leadscore.serving import service

    class Core:
        def __init__(self, changed):
            self.changed = changed

        def reload(self):
            return {"changed": self.changed}

    calls = []
    monkeypatch.setattr(service, "settle_heap", lambda: calls.append("settled"))
    svc = object.__new__(service.LeadScoring.inner)
    for changed in (False, True):
        svc.core = Core(changed)
        assert svc.reload() == {"changed": changed}
    assert calls == ["settled"]


def test_what_was_frozen_and_became_garbage_is_collected_by_the_next_settle():
    """A model replaced by a reload sits in reference cycles among frozen objects; frozen, the
    collector never looks at it again. The next ``settle_heap`` unfreezes and collects it."""
    import weakref

    from leadscore.serving import core

    class Model:
        pass

    old = Model()
    old.self = old  # a cycle: only the collector frees it
    gone = weakref.ref(old)
    try:
        core.settle_heap()
        del old
        gc.collect()
        assert gone() is not None  # frozen: a collection does not see it
        core.settle_heap()
        assert gone() is None
    finally:
        gc.unfreeze()
