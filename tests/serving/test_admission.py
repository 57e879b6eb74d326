"""Admission (``serving/admission.py``): shedding before anything else runs, slots only for complete bodies.

On main the capacity check sat in the gate, inside BentoML's tracing and Starlette's router, and a
slot was taken before the body was read: 8 clients sending their body a byte at a time held every
slot and everyone else got 503 (reproduced over a real server in ``test_real_server.py``).
"""

import asyncio
import json

import pytest

from leadscore.serving.admission import Admission


class App:
    """An ASGI app that records what reached it and answers 200 with the body's length."""

    def __init__(self, hold: asyncio.Event | None = None):
        self.calls, self.hold = [], hold

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.calls.append(scope["path"])
        if self.hold is not None:
            await self.hold.wait()
        body = json.dumps({"n": len(message.get("body", b""))}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def _admission(app, *, in_flight=2, max_bytes=1000, timeout=0.3, metrics=None) -> Admission:
    return Admission(app, max_in_flight=lambda: in_flight, max_bytes=lambda: max_bytes,
                     body_timeout_s=lambda: timeout, metrics=metrics)


def _scope(path="/score", length: int | None = None) -> dict:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers}


class Client:
    """One request to an ASGI app, its body sent in ``chunks`` with ``pause`` seconds between them."""

    def __init__(self, chunks=(b"{}",), pause=0.0):
        self.chunks, self.pause, self.sent = list(chunks), pause, []
        self.received_calls = 0

    async def receive(self):
        self.received_calls += 1
        if not self.chunks:
            await asyncio.sleep(3600)  # after the body only a disconnect could come
        if self.pause:
            await asyncio.sleep(self.pause)
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message):
        self.sent.append(message)

    @property
    def status(self):
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    @property
    def headers(self):
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"])

    @property
    def detail(self):
        return json.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))["detail"]


async def _call(admission, client, scope=None):
    await admission(scope or _scope(), client.receive, client.send)
    return client


def test_slow_bodies_hold_no_slot_and_time_out_with_408():
    """Two slots, eight clients each sending a byte every 50 ms: a ninth, complete request is served
    while they trickle; each slow one is answered 408 (connection closed) at the timeout, never 503."""

    async def run():
        app = App()
        admission = _admission(app, in_flight=2, timeout=0.3)
        slow = [Client([b"x"] * 100, pause=0.05) for _ in range(8)]
        tasks = [asyncio.create_task(_call(admission, c)) for c in slow]
        await asyncio.sleep(0.1)
        assert admission.in_flight == 0  # reading a body takes no slot
        fast = await _call(admission, Client([b'{"a": 1}']))
        assert fast.status == 200, fast.sent
        await asyncio.gather(*tasks)
        return app, admission, slow, fast

    app, admission, slow, _ = asyncio.run(run())
    assert [c.status for c in slow] == [408] * 8
    assert all(c.headers[b"connection"] == b"close" for c in slow)
    assert "LEADSCORE_BODY_TIMEOUT_S" in slow[0].detail and "0.3 s" in slow[0].detail
    assert app.calls == ["/score"] and admission.in_flight == 0


def test_over_capacity_is_503_before_the_body_is_read_or_the_app_runs():
    async def run():
        hold = asyncio.Event()
        app = App(hold)
        admission = _admission(app, in_flight=2)
        busy = [asyncio.create_task(_call(admission, Client())) for _ in range(2)]
        await asyncio.sleep(0.05)
        shed = await _call(admission, Client())
        hold.set()
        await asyncio.gather(*busy)
        return app, admission, shed, busy

    app, admission, shed, busy = asyncio.run(run())
    assert shed.status == 503 and shed.headers[b"retry-after"] == b"1" and "capacity" in shed.detail
    assert shed.received_calls == 0  # turned away on the headers alone
    assert [t.result().status for t in busy] == [200, 200] and len(app.calls) == 2
    assert admission.shed == 1 and admission.in_flight == 0


def test_a_slot_is_checked_again_when_the_body_is_complete():
    """The slots filled while a body arrived: it is shed then, not admitted beyond the cap."""

    async def run():
        hold = asyncio.Event()
        app = App(hold)
        admission = _admission(app, in_flight=1, timeout=5)
        slow = asyncio.create_task(_call(admission, Client([b"{", b"}"], pause=0.1)))
        await asyncio.sleep(0.02)
        busy = asyncio.create_task(_call(admission, Client()))
        await asyncio.sleep(0.05)
        assert admission.in_flight == 1
        done = await slow
        hold.set()
        await busy
        return done, admission

    done, admission = asyncio.run(run())
    assert done.status == 503 and admission.in_flight == 0


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_over_the_cap_is_413_as_it_arrives(declared):
    async def run():
        app = App()
        client = Client([b"x" * 400] * 5)
        await _call(_admission(app, max_bytes=1000), client, _scope(length=2000 if declared else None))
        return app, client

    app, client = asyncio.run(run())
    assert client.status == 413 and "1,000 bytes" in client.detail and app.calls == []
    if declared:
        assert "found 2,000" in client.detail and client.received_calls == 0


def test_health_checks_and_lifespan_pass_untouched():
    async def run():
        hold = asyncio.Event()
        app = App(hold)
        admission = _admission(app, in_flight=1)
        busy = asyncio.create_task(_call(admission, Client()))
        await asyncio.sleep(0.02)
        ready = asyncio.create_task(_call(admission, Client(), _scope("/readyz")))
        await asyncio.sleep(0.02)
        hold.set()
        await asyncio.gather(busy, ready)
        return ready.result()

    assert asyncio.run(run()).status == 200


def test_turned_away_requests_are_counted_for_operators(tmp_path):
    from leadscore.serving.security import Metrics

    metrics = Metrics(folder=lambda: tmp_path)

    async def run():
        hold = asyncio.Event()
        admission = _admission(App(hold), in_flight=1, timeout=0.1, metrics=metrics)
        busy = asyncio.create_task(_call(admission, Client()))
        await asyncio.sleep(0.02)
        for _ in range(3):
            await _call(admission, Client())
        hold.set()
        await busy
        await _call(admission, Client([b"x"] * 10, pause=0.05))

    asyncio.run(run())
    text = metrics.render()[0].decode()
    assert 'leadscore_http_turned_away_total{status="503"} 3.0' in text
    assert 'leadscore_http_turned_away_total{status="408"} 1.0' in text


def test_the_served_app_is_admission_outside_bentoml_and_the_gate():
    """What a worker hands uvicorn (``Service.to_asgi``) is the admission layer, so it runs before
    BentoML's OpenTelemetry middleware, the router and the gate."""
    from leadscore.serving.service import LeadScoring

    served = LeadScoring.to_asgi()
    assert isinstance(served, Admission)
    assert type(served.app).__name__ == "Starlette"  # BentoML's app, with its middlewares, inside


def test_a_slot_is_free_once_the_answer_is_out():
    """A client that sends its next request as soon as it has its answer must find its slot free,
    even while the app still returns (on main the slot was freed only then, and 8 users against 8
    slots saw a 503 in the sustained load test)."""

    class Lingers(App):
        async def __call__(self, scope, receive, send):
            await super().__call__(scope, receive, send)
            await asyncio.sleep(0.2)  # after the last body part: cleanup, a ledger write, a span

    async def run():
        admission = _admission(Lingers(), in_flight=1)
        answered = Client()
        first = asyncio.create_task(_call(admission, answered))
        while not first.done() and not any(m["type"] == "http.response.body" for m in answered.sent):
            await asyncio.sleep(0.01)
        in_flight_after_answer = admission.in_flight
        second = await _call(admission, Client())
        await first
        return in_flight_after_answer, second, admission

    in_flight_after_answer, second, admission = asyncio.run(run())
    assert in_flight_after_answer == 0
    assert second.status == 200 and admission.in_flight == 0 and admission.shed == 0
