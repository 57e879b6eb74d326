"""The gate in front of every API route: keys, body size, content type, capacity, and the access log.

One ASGI middleware, so the checks hold for every route the same way and cost microseconds:

- **Keys**: ``Authorization: Bearer <key>``, compared in constant time against every configured
  key (several, for rotation). A lead card may instead carry a signed, expiring link
  (``card_link``), because an iframe cannot send headers: the signature covers the lead id as the
  route decodes it, so no other spelling of the path opens another lead. ``/metrics`` also takes
  a metrics key, which opens nothing else. Keys are never logged.
- **Size**: a body over ``max_request_bytes`` is 413, by ``Content-Length`` or while streaming.
- **Type**: a POST body other than ``application/json`` is 415 (no pickle, no multipart).
- **Capacity** is not here: ``serving.admission.Admission`` sheds before this gate (and before
  BentoML's tracing) runs, and takes a slot only once the body is complete.
- **Logs**: one JSON line per request (route, status, milliseconds); lead ids in paths are
  pseudonymised with the deployment's keyed hash.
- **Metrics**: requests and durations per route *template* (``/leads/{lead_id}/card``, never an
  id), method and status, each from a closed set, so the series are bounded; kept per worker in a
  folder of this service instance and summed when ``/metrics`` is read (``Metrics``).

BentoML's own routes (``/livez``, ``/readyz``, ``/docs.json``) are outside this app and stay open,
as health checks must; BentoML's own ``/metrics`` is switched off (``serving.service``), because
it is open and labels requests by their raw path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote

from pythonjsonlogger.json import JsonFormatter

from leadscore.serving.admission import too_large
from leadscore.serving.ledger import pseudonym

log = logging.getLogger("leadscore.serving")

# A lead id may hold "/": the id is everything between /leads/ and the route's last segment, as the
# routes' {lead_id:path} reads it.
_LEAD_PATH = re.compile(r"^/leads/(?P<lead_id>.+)/(?P<verb>history|change|card|card-link)$", re.DOTALL)
CARD_ROUTE = "/leads/{lead_id}/card"
METRICS_PATH = "/metrics"


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


def _link_mac(secret: bytes, lead_id: str, expires: int) -> str:
    # The lead id as the route decodes it, not the path as written: "%2F" and "/", "%25" and "%" are
    # spellings of one path, so a signature over a spelling could be replayed under another.
    mac = hmac.new(secret, b"leadscore-card-link\0" + lead_id.encode("utf-8", "surrogatepass") + b"\0"
                   + str(expires).encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def card_link(secret: bytes, lead_id: str, expires: int) -> str:
    """The path of ``lead_id``'s card with a signature that lets a browser open it without a key until
    ``expires`` (epoch s). Every character of the id is percent-encoded, ``/`` included."""
    return f"/leads/{quote_id(lead_id)}/card?expires={expires}&sig={_link_mac(secret, lead_id, expires)}"


def link_valid(secret: bytes, lead_id: str, query: str, now: float | None = None) -> bool:
    """Whether ``query`` carries an unexpired signature for exactly ``lead_id`` (the decoded id)."""
    params = parse_qs(query)
    try:
        expires, sig = int(params["expires"][0]), params["sig"][0]
    except (KeyError, ValueError, IndexError):
        return False
    if expires < (now or time.time()):
        return False
    return hmac.compare_digest(sig.encode("latin-1", "replace"), _link_mac(secret, lead_id, expires).encode())


def safe_path(path: str, secret: bytes) -> str:
    """The path as logged: a lead id in it (the whole id, "/" and all) replaced by its pseudonym."""
    if not path.startswith("/leads/") or not secret:
        return path if not path.startswith("/leads/") else "/leads/~"
    match = _LEAD_PATH.match(path)
    if match:
        return f"/leads/~{pseudonym(match['lead_id'], secret)[:16]}/{match['verb']}"
    return f"/leads/~{pseudonym(path[len('/leads/'):], secret)[:16]}"


async def _send_json(send: Callable, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def route_of(scope: dict, routes: Sequence) -> tuple[str, dict]:
    """The template of the app route ``scope`` reaches (``/leads/{lead_id}/card``, or ``other``) and the
    path parameters exactly as that route will decode them."""
    from starlette.routing import Match

    partial = None
    for route in _flat(routes):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path_format", "other"), child.get("path_params", {})
        if match is Match.PARTIAL and partial is None:  # right path, other method: a 405
            partial = getattr(route, "path_format", "other")
    return partial or "other", {}


def decoded_once(scope: dict) -> dict:
    """``scope`` with its path decoded exactly once from the bytes sent, as uvicorn does.

    The signature, the router and the ledger must all see one lead id; a server (or test client)
    that decodes twice would turn ``L%25201`` into ``L 1``, so the path is re-derived here, before
    the gate and the routes read it.
    """
    raw = scope.get("raw_path")
    if not raw:
        return scope
    path = unquote(raw.decode("latin-1").split("?", 1)[0])
    root = scope.get("root_path", "")
    if path == scope["path"] or (root and not path.startswith(root)):
        return scope
    return {**scope, "path": path}


def _flat(routes: Sequence):
    """The app's routes in matching order, the ones of included routers (FastAPI's class views) inlined."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if hasattr(route, "path_format"):
            yield route
        elif inner is not None:
            yield from _flat(inner.routes)


class Gate:
    """ASGI middleware: keys, size and type checks, then the access log line and the metrics."""

    def __init__(self, app, *, keys: Callable[[], list[str]], secret: Callable[[], bytes],
                 max_bytes: Callable[[], int],
                 routes: Callable[[], Sequence] = lambda: (), metrics_keys: Callable[[], list[str]] = lambda: [],
                 metrics: "Metrics | None" = None) -> None:
        self.app = app
        self._keys, self._secret, self._max_bytes = keys, secret, max_bytes
        self._routes, self._metrics_keys, self.metrics = routes, metrics_keys, metrics

    def _authorised(self, scope: dict, route: str, params: dict) -> bool:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if token and keys_match(token, self._keys()):
            return True
        if token and route == METRICS_PATH and keys_match(token, self._metrics_keys()):
            return True
        if route == CARD_ROUTE and scope["method"] in ("GET", "HEAD") and scope.get("query_string") and "lead_id" in params:
            return link_valid(self._secret(), params["lead_id"], scope["query_string"].decode("latin-1"))
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status_seen: list[int] = []
        scope = decoded_once(scope)
        route, params = route_of(scope, self._routes())

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, send_logged, route, params)
        finally:
            status = status_seen[0] if status_seen else 0
            seconds = time.perf_counter() - started
            log.info("request", extra={
                "method": scope["method"], "path": safe_path(scope["path"], self._secret()), "status": status,
                "ms": round(seconds * 1e3, 2),
            })
            if self.metrics is not None:
                self.metrics.observe(route, scope["method"], status, seconds)

    async def _guarded(self, scope, receive, send, route: str, params: dict):
        if not self._authorised(scope, route, params):
            return await _send_json(send, 401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                    [(b"www-authenticate", b"Bearer")])
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
                return await _send_json(send, 413, too_large(limit, length))
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
                    await _send_json(send, 413, too_large(limit))
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


def quote_id(lead_id: str) -> str:
    """A lead id as a path segment."""
    return quote(lead_id, safe="")


# --- metrics for operators

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUESTS = ("leadscore_http_requests", "Requests answered, by route template, method and status.")
_DURATION = ("leadscore_http_request_duration_seconds", "Time to answer, by route template.")
_SCORES = ("leadscore_scores", "Leads answered, by scorer and fallback reason code.")
_SHED = ("leadscore_http_turned_away", "Requests answered before the app by admission: 503 over capacity, "
         "408 body too slow, 413 body too large.")


def instance_folder() -> Path:
    """This service instance's metrics folder: shared by its workers, by no other instance.

    A BentoML worker's instance is its parent, the ``bentoml serve`` process; anything else (a test,
    an in-process app) is an instance of its own. The folder is named by that process's id and start
    time, so a recycled process id never inherits old counts; folders of instances that are gone are
    removed. It lives in the user's private folder under the temp dir, never in ~/bentoml (which
    every BentoML service on the machine shares and each one empties when it starts).
    """
    import bentoml

    anchor = os.getppid() if bentoml.server_context.worker_index is not None else os.getpid()
    base = Path(tempfile.gettempdir()) / f"leadscore-metrics-{os.getuid() if hasattr(os, 'getuid') else 0}"
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.lstat()
    if base.is_symlink() or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        # Someone else made the folder: never write into it.
        base = Path(tempfile.mkdtemp(prefix="leadscore-metrics-"))
    for old in base.iterdir():
        pid, _, started = old.name.partition("-")
        if pid.isdigit() and int(pid) != anchor and _start_time(int(pid)) != started:
            _remove_tree(old)
    folder = base / f"{anchor}-{_start_time(anchor)}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux); "gone" when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            pass
        return "0"


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "none"  # 0: the client left before an answer


class Metrics:
    """Request counts and durations, and scorer answers, for Prometheus.

    Every label comes from a closed set: the app's route templates (or ``other``), seven methods
    (or ``other``), HTTP statuses, ``model``/``rules``/``none``, ``models.policy.FALLBACK_REASONS``
    codes. Each worker process writes its values to its own memory-mapped file in the instance's
    folder (prometheus_client's multiprocess format); ``/metrics`` sums the files of that folder only.
    Nothing touches the file system until the first value.
    """

    def __init__(self, folder: Callable[[], Path] = instance_folder) -> None:
        self._folder_of = folder
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._files: dict = {}
        self.folder: Path | None = None

    def _file(self, typ: str):
        from prometheus_client.mmap_dict import MmapedDict

        if self._pid != os.getpid():  # first use, or a forked child: its own files
            self._files, self._pid = {}, os.getpid()
            self.folder = self._folder_of()
        if typ not in self._files:
            self._files[typ] = MmapedDict(str(self.folder / f"{typ}_{self._pid}.db"))
        return self._files[typ]

    def _add(self, typ: str, metric: tuple[str, str], sample: str, labels: dict, amount: float) -> None:
        from prometheus_client.mmap_dict import mmap_key

        file = self._file(typ)
        key = mmap_key(metric[0], sample, list(labels), list(labels.values()), metric[1])
        value, _ = file.read_value(key)
        file.write_value(key, value + amount, 0.0)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (never raises: metrics must not cost an answer)."""
        try:
            labels = {"route": route, "method": method if method in _METHODS else "other", "status": _status_label(status)}
            with self._lock:
                self._add("counter", _REQUESTS, _REQUESTS[0] + "_total", labels, 1.0)
                # Multiprocess histograms store each bucket's own count; the collector accumulates them.
                bound = next((b for b in _BUCKETS if seconds <= b), float("inf"))
                le = "+Inf" if bound == float("inf") else repr(bound)
                self._add("histogram", _DURATION, _DURATION[0] + "_bucket", {"route": route, "le": le}, 1.0)
                for b in _BUCKETS:
                    if b != bound:
                        self._add("histogram", _DURATION, _DURATION[0] + "_bucket", {"route": route, "le": repr(b)}, 0.0)
                if bound != float("inf"):
                    self._add("histogram", _DURATION, _DURATION[0] + "_bucket", {"route": route, "le": "+Inf"}, 0.0)
                self._add("histogram", _DURATION, _DURATION[0] + "_sum", {"route": route}, seconds)
        except Exception:  # noqa: BLE001
            log.warning("metrics not recorded", exc_info=True)

    def count_shed(self, status: int, n: int = 1) -> None:
        """Count ``n`` requests turned away by ``serving.admission`` (never raises)."""
        try:
            with self._lock:
                self._add("counter", _SHED, _SHED[0] + "_total", {"status": _status_label(status)}, float(n))
        except Exception:  # noqa: BLE001
            log.warning("metrics not recorded", exc_info=True)

    def count_scores(self, answers: Sequence[tuple[str | None, str | None]]) -> None:
        """Count answered leads as (scorer, fallback reason) pairs; the reason counts by its code only."""
        from leadscore.models.policy import FALLBACK_REASONS

        try:
            with self._lock:
                for scorer, reason in answers:
                    code = (reason or "").split(":", 1)[0].strip()
                    labels = {"scorer": scorer if scorer in ("model", "rules") else "none",
                              "fallback": code if code in FALLBACK_REASONS else ("none" if not reason else "other")}
                    self._add("counter", _SCORES, _SCORES[0] + "_total", labels, 1.0)
        except Exception:  # noqa: BLE001
            log.warning("metrics not recorded", exc_info=True)

    def render(self) -> tuple[bytes, str]:
        """The instance's metrics in Prometheus text format, summed over its workers, and the content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        with self._lock:
            self._file("counter")  # the folder exists and this worker is in it, even before a request
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(self.folder))
        return generate_latest(registry), CONTENT_TYPE_LATEST
