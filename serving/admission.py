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
- **Counts what it turned away** (``Metrics.count_shed``) and logs it at most once per
  ``LOG_EVERY_S`` as a total, because a line per shed request would cost more than the answer.

Health checks (``/livez``, ``/readyz``, ``/healthz``) pass untouched: a worker that is busy is alive.
Slow *headers* never reach an ASGI app (uvicorn parses them), so they take no slot either; uvicorn
has no header timeout, so such a connection stays open until the client gives up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

log = logging.getLogger("leadscore.serving")

RETRY_AFTER_S = 1
LOG_EVERY_S = 10.0
EXEMPT_PATHS = frozenset({"/livez", "/readyz", "/healthz"})


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
        self._over: dict[int, tuple[dict, dict]] = {}

    def _over_capacity(self) -> tuple[dict, dict]:
        # One prepared answer per in-flight count: nothing is formatted on the shedding path.
        n = self.in_flight
        if n not in self._over:
            self._over[n] = _fixed(503, f"over capacity ({n} requests in flight in this worker); retry after "
                                        f"{RETRY_AFTER_S} s", [(b"retry-after", str(RETRY_AFTER_S).encode())])
        return self._over[n]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            return await self.app(scope, receive, send)
        if self.in_flight >= self._max_in_flight():
            return await self._shed(send)
        body = await self._read_body(scope, receive, send)
        if body is None:  # answered (408/413) or the client left
            return
        if self.in_flight >= self._max_in_flight():  # filled while this body arrived
            return await self._shed(send)
        self.in_flight += 1
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, send) -> None:
        start, body = self._over_capacity()
        await send(start)
        await send(body)
        self.shed += 1
        self._unlogged += 1
        if self.metrics is not None:
            self.metrics.count_shed(503)
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning("over capacity", extra={"shed": self._unlogged, "shed_total": self.shed,
                                                 "max_in_flight": self._max_in_flight()})
            self._unlogged, self._logged_at = 0, now

    async def _read_body(self, scope, receive, send) -> bytes | None:
        limit, timeout = self._max_bytes(), self._body_timeout_s()
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
