"""Admission: the outermost layer of the served app, before BentoML's tracing, the router and the gate.

Over capacity the cheapest answer is the best one, and every microsecond spent on a request that is
turned away is taken from one that is served. So this ASGI layer wraps the whole app BentoML gives
uvicorn (``service.to_asgi``), in front of OpenTelemetry, Starlette's router, FastAPI and
``serving.security.Gate``, and does three things only:

- **Sheds at once**: when ``max_in_flight`` requests are already in this worker, 503 with
  ``Retry-After``, before the path is decoded, the key is compared, a span is opened or the body is
  read (a counter and a fixed answer: tens of microseconds).
- **Reads the body before a slot is taken**: a request holds one of the ``max_in_flight`` slots only
  from the moment its body is complete, so clients that send slowly (one byte at a time) hold a
  connection, never the capacity of the others. A body not complete within ``body_timeout_s`` is
  answered 408 and the connection closed; a body over ``max_request_bytes`` is 413 as it arrives.
- **Counts what it turned away** and logs it at most once per ``LOG_EVERY_S`` as a total, because a
  line per shed request would cost more than the answer. 503s reach ``Metrics.count_shed`` (a
  memory-mapped file) in batches: at most ``FLUSH_EVERY_S`` apart, and before any request this
  layer lets in, so a scrape of ``/metrics`` on this worker counts every 503 before it.
- **Frees a slot when the answer is out** (its last body part sent), not when the app returns: a
  client that sends its next request at once finds its own slot free again.

Health checks (``/livez``, ``/readyz``, ``/healthz``) pass untouched: a worker that is busy is alive.
Slow *headers* never reach an ASGI app (uvicorn parses them), so they take no slot either; uvicorn
has no header timeout, so such a connection stays open until the client gives up.

Under 25× overload even the ASGI layer was too dear: every 503 still cost uvicorn an asyncio task, a
trip through its proxy-header middleware and two ``send`` calls that build headers (~27 % of the
event loop in a profile, besides parsing), and a caller's 503 waited behind all of them (p95 10 ms).
So ``SheddingProtocol``, uvicorn's own HTTP protocol with one method changed, asks the same
``Admission.full`` as soon as a request's headers are parsed and, over capacity, writes a prepared
503 straight to the socket: no task, no ASGI call; the body that may follow is dropped by the
parser as it arrives, and the connection stays open for the next request (closed if that body is
not through within ``body_timeout_s``, as an admitted body would be answered 408). ``install_protocol``
puts it where uvicorn looks for its default protocol (``uvicorn.protocols.http.auto``) when a worker
builds its app; without httptools the check in ``Admission.__call__`` still sheds, as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("leadscore.serving")

RETRY_AFTER_S = 1
LOG_EVERY_S = 10.0
FLUSH_EVERY_S = 0.5
EXEMPT_PATHS = frozenset({"/livez", "/readyz", "/healthz"})


def worker_count() -> int:
    """The service's worker processes (``LEADSCORE_WORKERS``, default 1): BentoML's and the front's."""
    return int(os.environ.get("LEADSCORE_WORKERS", "1"))


def over_capacity(in_flight: int, where: str = "in this worker") -> str:
    """The 503 text, here and in the front (``serving.front``)."""
    return f"over capacity ({in_flight} requests in flight {where}); retry after {RETRY_AFTER_S} s"


def _fixed(status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> tuple[dict, dict]:
    body = json.dumps({"detail": detail}).encode()
    start = {"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]}
    return start, {"type": "http.response.body", "body": body}


def too_large(limit: int, found: int | None = None) -> str:
    """The 413 text, here and in the gate."""
    return f"request body: expected at most {limit:,} bytes" + (f", found {found:,}" if found is not None else "")


class Admission:
    """ASGI middleware: capacity, then the complete body, then the app (see the module's text)."""

    def __init__(self, app, *, max_in_flight: Callable[[], int], max_bytes: Callable[[], int],
                 body_timeout_s: Callable[[], float], metrics=None) -> None:
        self.app = app
        self._max_in_flight, self._max_bytes, self._body_timeout_s = max_in_flight, max_bytes, body_timeout_s
        self.metrics = metrics
        self.in_flight = 0
        self.shed = 0  # 503s since start
        self._unlogged, self._logged_at = 0, 0.0
        self._uncounted, self._counted_at = 0, 0.0  # 503s not yet in the metrics file
        self._over: dict[int, tuple[dict, dict]] = {}
        self._over_bytes: dict[tuple[int, bool], tuple[list, bytes]] = {}

    def full(self, path: str) -> bool:
        """Over capacity for a request to ``path`` (health checks never are)."""
        return path not in EXEMPT_PATHS and self._at_capacity()

    def _at_capacity(self) -> bool:
        return self.in_flight >= self._max_in_flight()

    @property
    def body_timeout_s(self) -> float:
        """Seconds a request body has to arrive whole (408 when admitted; the connection closed when shed)."""
        return self._body_timeout_s()

    def shed_bytes(self, keep_alive: bool, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The 503 as HTTP/1.1 bytes, for ``SheddingProtocol``: the same status, headers and text as
        the ASGI answer, plus the server's default headers (``date``)."""
        key = (self.in_flight, keep_alive)
        made = self._over_bytes.get(key)
        if made is not None and made[0] is default_headers:  # uvicorn makes a new list when the date changes
            return made[1]
        start, body = self._over_capacity()
        headers = [*default_headers, *start["headers"]] + ([] if keep_alive else [(b"connection", b"close")])
        answer = b"".join([b"HTTP/1.1 503 Service Unavailable\r\n",
                           *(b"%s: %s\r\n" % pair for pair in headers), b"\r\n", body["body"]])
        self._over_bytes[key] = (default_headers, answer)
        return answer

    def _over_capacity(self) -> tuple[dict, dict]:
        # One prepared answer per in-flight count: nothing is formatted on the shedding path.
        n = self.in_flight
        if n not in self._over:
            self._over[n] = _fixed(503, over_capacity(n), [(b"retry-after", str(RETRY_AFTER_S).encode())])
        return self._over[n]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            return await self.app(scope, receive, send)
        if self._at_capacity():  # SheddingProtocol turns these away before a task
            return await self._shed(send)
        if self._uncounted:
            self._flush()
        body = await self._read_body(scope, receive, send)
        if body is None:  # answered (408/413) or the client left
            return
        if self._at_capacity():  # filled while this body arrived
            return await self._shed(send)
        self.in_flight += 1
        unread = held = True  # the body not yet handed to the app; the slot not yet freed

        async def replay():
            nonlocal unread
            if unread:
                unread = False
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        async def sent(message):
            nonlocal held
            await send(message)
            if held and message["type"] == "http.response.body" and not message.get("more_body", False):
                held = False
                self.in_flight -= 1

        try:
            await self.app(scope, replay, sent)
        finally:
            if held:
                self.in_flight -= 1

    async def _shed(self, send) -> None:
        start, body = self._over_capacity()
        self.count_shed()
        await send(start)
        await send(body)

    def count_shed(self) -> None:
        """Count one 503 for /metrics (in batches, see the module's text) and the log (a total at most
        once per ``LOG_EVERY_S``)."""
        self.shed += 1
        self._unlogged += 1
        self._uncounted += 1
        now = time.monotonic()
        if now - self._counted_at >= FLUSH_EVERY_S:
            self._flush(now)
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning("over capacity", extra={"shed": self._unlogged, "shed_total": self.shed,
                                                 "max_in_flight": self._max_in_flight()})
            self._unlogged, self._logged_at = 0, now

    def _flush(self, now: float | None = None) -> None:
        if self.metrics is not None:
            self.metrics.count_shed(503, self._uncounted)
        self._uncounted, self._counted_at = 0, time.monotonic() if now is None else now

    async def _read_body(self, scope, receive, send) -> bytes | None:
        limit, timeout = self._max_bytes(), self.body_timeout_s
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._answer(send, 413, too_large(limit, declared))
            return None
        chunks, size = [], 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # http.disconnect: nobody to answer
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await self._answer(send, 413, too_large(limit))
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            await self._answer(send, 408, f"request body: expected complete within {timeout:g} s "
                                          f"(LEADSCORE_BODY_TIMEOUT_S), found {size:,} bytes by then",
                               [(b"connection", b"close")])
            return None

    async def _answer(self, send, status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> None:
        start, body = _fixed(status, detail, list(extra))
        await send(start)
        await send(body)
        if self.metrics is not None:
            self.metrics.count_shed(status)


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the gate answers 400 naming the header
    return None


# --- shedding in uvicorn's protocol, before an ASGI task exists


def _admission_of(app) -> Admission | None:
    """The Admission layer inside what uvicorn serves (uvicorn wraps it in its proxy-header middleware)."""
    for _ in range(4):
        if isinstance(app, Admission):
            return app
        app = getattr(app, "app", None)
    return None


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn's h11 protocol, and the ASGI check sheds
    HttpToolsProtocol = None
else:

    class SheddingProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, with the request turned away where its ASGI task would start."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._admission = _admission_of(self.app)
            self._shed_cycle = None  # a request answered 503 whose body is still arriving
            self._shed_body_timer = None  # closes the connection if that body does not finish in time

        def _start_asgi_task(self, cycle, app) -> None:
            admission = self._admission
            if admission is None or app is not self.app or not admission.full(cycle.scope["path"]):
                return super()._start_asgi_task(cycle, app)
            # Marked complete, the base class drops the body as it arrives (on_body, on_message_complete).
            cycle.response_started = cycle.response_complete = True
            admission.count_shed()
            self.transport.write(admission.shed_bytes(cycle.keep_alive, self.server_state.default_headers))
            if not cycle.keep_alive:
                self.transport.close()
            elif cycle.more_body:
                self._shed_cycle = cycle  # the connection is ready again once its body is through,
                # within the time an admitted body has; else it is closed (no keep-alive timer runs meanwhile)
                self._shed_body_timer = self.loop.call_later(admission.body_timeout_s, self._shed_body_late, cycle)
            else:
                self.on_response_complete()

        def _shed_body_late(self, cycle) -> None:
            self._shed_body_timer = None
            if self._shed_cycle is cycle:
                self.transport.close()

        def _cancel_shed_body_timer(self) -> None:
            if self._shed_body_timer is not None:
                self._shed_body_timer.cancel()
                self._shed_body_timer = None

        def on_message_complete(self) -> None:
            cycle = self._shed_cycle
            if cycle is not None and cycle is self.cycle:
                self._shed_cycle = None
                self._cancel_shed_body_timer()
                cycle.more_body = False
                self.on_response_complete()  # keep-alive timer, reading resumed, the next pipelined request
                return
            super().on_message_complete()

        def connection_lost(self, exc) -> None:
            self._cancel_shed_body_timer()
            super().connection_lost(exc)


def install_protocol() -> bool:
    """Make ``SheddingProtocol`` uvicorn's default HTTP protocol in this process (a worker, before it
    builds its uvicorn config). False when uvicorn's default is not the httptools one it extends."""
    if HttpToolsProtocol is None:
        return False
    import uvicorn.protocols.http.auto as auto

    if auto.AutoHTTPProtocol is HttpToolsProtocol:
        auto.AutoHTTPProtocol = SheddingProtocol
    return auto.AutoHTTPProtocol is SheddingProtocol
