"""The gate in front of every API route: keys, body size, content type, capacity, and the access log.

One ASGI middleware, so the checks hold for every route the same way and cost microseconds:

- **Keys**: ``Authorization: Bearer <key>``, compared in constant time against every configured
  key (several, for rotation). A lead card may instead carry a signed, expiring link
  (``card_link``), because an iframe cannot send headers. Keys are never logged.
- **Size**: a body over ``max_request_bytes`` is 413, by ``Content-Length`` or while streaming.
- **Type**: a POST body other than ``application/json`` is 415 (no pickle, no multipart).
- **Capacity**: more than ``max_in_flight`` requests in this worker is 503 with ``Retry-After``,
  at once, never a queue that hangs.
- **Logs**: one JSON line per request (route, status, milliseconds); lead ids in paths are
  pseudonymised with the deployment's keyed hash.

BentoML's own routes (``/livez``, ``/readyz``, ``/metrics``, ``/docs.json``) are outside this app
and stay open, as health checks must.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote

from pythonjsonlogger.json import JsonFormatter

from leadscore.serving.ledger import pseudonym

log = logging.getLogger("leadscore.serving")

RETRY_AFTER_S = 1
_LEAD_PATH = re.compile(r"^/leads/([^/]+)(/.*)?$")


def configure_logging(level: int = logging.INFO) -> None:
    """Structured JSON lines on stderr for the service's own logger (idempotent)."""
    if any(getattr(h, "_leadscore", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                                       rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    handler._leadscore = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def keys_match(token: str, keys: list[str]) -> bool:
    """Whether ``token`` is one of ``keys``, in time that does not depend on where they differ."""
    given = token.encode()
    # Every key is compared (no early exit), so timing does not reveal which one nearly matched.
    results = [hmac.compare_digest(given, key.encode()) for key in keys]
    return any(results)


def _link_mac(secret: bytes, path: str, expires: int) -> str:
    mac = hmac.new(secret, b"leadscore-card-link\0" + path.encode() + b"\0" + str(expires).encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def card_link(secret: bytes, path: str, expires: int) -> str:
    """``path`` with a signature that lets a browser open it without a key until ``expires`` (epoch s)."""
    return f"{path}?expires={expires}&sig={_link_mac(secret, path, expires)}"


def link_valid(secret: bytes, path: str, query: str, now: float | None = None) -> bool:
    params = parse_qs(query)
    try:
        expires, sig = int(params["expires"][0]), params["sig"][0]
    except (KeyError, ValueError, IndexError):
        return False
    if expires < (now or time.time()):
        return False
    return hmac.compare_digest(sig, _link_mac(secret, path, expires))


def safe_path(path: str, secret: bytes) -> str:
    """The path as logged: a lead id in it replaced by its pseudonym."""
    match = _LEAD_PATH.match(path)
    if not match:
        return path
    return f"/leads/~{pseudonym(match.group(1), secret)[:16]}{match.group(2) or ''}"


async def _send_json(send: Callable, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware: keys, size, type and capacity checks, then the access log line."""

    def __init__(self, app, *, keys: Callable[[], list[str]], secret: Callable[[], bytes],
                 max_bytes: Callable[[], int], max_in_flight: Callable[[], int],
                 signed_paths: re.Pattern[str] = re.compile(r"^/(card|leads/[^/]+/card)$")) -> None:
        self.app = app
        self._keys, self._secret, self._max_bytes, self._max_in_flight = keys, secret, max_bytes, max_in_flight
        self._signed = signed_paths
        self.in_flight = 0

    def _authorised(self, scope: dict) -> bool:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token and keys_match(token.strip(), self._keys()):
            return True
        path = scope["path"]
        if self._signed.match(path) and scope.get("query_string"):
            return link_valid(self._secret(), path, scope["query_string"].decode("latin-1"))
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status_seen: list[int] = []

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, send_logged)
        finally:
            status = status_seen[0] if status_seen else 0
            log.info("request", extra={
                "method": scope["method"], "path": safe_path(scope["path"], self._secret()), "status": status,
                "ms": round((time.perf_counter() - started) * 1e3, 2),
            })

    async def _guarded(self, scope, receive, send):
        if not self._authorised(scope):
            return await _send_json(send, 401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                    [(b"www-authenticate", b"Bearer")])
        if self.in_flight >= self._max_in_flight():
            return await _send_json(
                send, 503, f"over capacity ({self.in_flight} requests in flight in this worker); retry after {RETRY_AFTER_S} s",
                [(b"retry-after", str(RETRY_AFTER_S).encode())])
        headers = dict(scope.get("headers") or [])
        limit = self._max_bytes()
        if scope["method"] in ("POST", "PUT", "PATCH"):
            try:
                length = int(headers.get(b"content-length", b"0") or 0)
            except ValueError:
                return await _send_json(send, 400, "content-length: expected a number")
            has_body = length > 0 or b"transfer-encoding" in headers
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if has_body and kind != b"application/json":
                shown = kind.decode("latin-1")[:80] or "none"
                return await _send_json(send, 415, f"content type: expected application/json, found {shown}")
            if length > limit:
                return await _send_json(send, 413, f"request body: expected at most {limit:,} bytes, found {length:,}")
        self.in_flight += 1
        received = 0
        started = rejected = False

        async def receive_capped():
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    # Answer now; the app then sees the client gone and whatever it sends is dropped.
                    rejected = True
                    await _send_json(send, 413, f"request body: expected at most {limit:,} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def send_tracking(message):
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_capped, send_tracking)
        except Exception:
            if not rejected:
                raise
        finally:
            self.in_flight -= 1


def quote_id(lead_id: str) -> str:
    """A lead id as a path segment."""
    return quote(lead_id, safe="")
