"""The front: HAProxy before the BentoML worker, so that turning a request away costs the worker nothing.

The worker's own shedding (``serving.admission.SheddingProtocol``) answers a 503 in ~27 µs of its
event loop. But that loop also parses, validates and answers every admitted request, and shares
one GIL with the model threads: under 25× overload on 2 cores a 503 to another caller waited
p95 8–11 ms behind them (bench/serve_load.py, ``--front none``). HAProxy is a process of its own,
written in C, with an event loop that does nothing else; the same 503 from it took p95 4.0 ms, at
the level of a bare server on that loaded machine (4.1 ms in the same run).

``haproxy_config`` writes its configuration from the service's settings (one source, no second copy):

- **Sheds** when the workers hold ``max_in_flight`` × workers requests: 503 with ``Retry-After`` and
  the worker's own text (``admission.over_capacity``). Health routes always pass.
- **Holds each body** (declared up to ``BUFFERED_BODY_BYTES``) until it is complete, and only then
  passes the request on and counts it: a client that sends one byte at a time holds a connection
  of the front, never capacity. Headers and body must be complete within ``body_timeout_s`` (408).
  A larger or chunked body goes to the worker as it arrives, through a second backend the front
  does not count or shed; the worker's admission times it and counts it once complete, as without
  the front. (While such requests are in flight the front may let more through than the worker
  admits; the worker sheds those itself.)
- **Answers its own errors in the service's form** (``{"detail": "…"}``, expected vs found): 408 for
  a body not complete in time, 502/503 no worker (starting, restarting, down), 504. Not a request
  HAProxy cannot parse (400) or whose headers are too slow (408): HAProxy 2.6 (Debian 12) answers
  those with its own HTML page whatever the configuration says (haproxy/haproxy#3032, fixed in 3.2).
- **Logs nothing**: paths carry lead ids; the worker logs pseudonymised lines.

The worker keeps its admission: a request that reaches it directly, or one past the front's count in
the moment two arrive together, is still answered by it. Turned-away requests of the front are not
in the worker's ``/metrics``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from leadscore.serving.admission import EXEMPT_PATHS, RETRY_AFTER_S, over_capacity, worker_count
from leadscore.serving.request_timeout import TRAFFIC_TIMEOUT_S

# HAProxy's buffer per request. A bigger one costs under overload: the 503's p95 was 4.0–4.4 ms with
# 16–128 KiB (four runs) and 5.5–5.6 ms with 1 MiB (two runs; bench/serve_load.py, at once).
BUFFER_BYTES = 1 << 17
# A body declared up to this size is complete in the front before the worker sees the request (the
# rest of the buffer holds the headers). A larger or chunked one is passed on as it arrives, outside
# the front's count, and the worker's admission times it and counts it once complete.
BUFFERED_BODY_BYTES = 100_000
MAX_CONNECTIONS = 4000
KEEP_ALIVE_S = 60
CONNECT_TIMEOUT_S = 2


class FrontError(RuntimeError):
    """HAProxy is missing or refused its configuration (the message says which)."""


def binary() -> str | None:
    """The ``haproxy`` on PATH, or None."""
    return shutil.which("haproxy")


def _quoted(detail: str) -> str:
    body = json.dumps({"detail": detail})
    assert "'" not in body, "HAProxy's strong quotes cannot hold a single quote"
    return f"'{body}'"


def _json_error(status: int, detail: str, extra: str = "") -> str:
    return f"    http-error status {status} content-type application/json string {_quoted(detail)}{extra}"


def haproxy_config(settings, bind: str, upstream: str, workers: int | None = None) -> str:
    """HAProxy's configuration: listen on ``bind`` (host:port), pass on to the worker at ``upstream``."""
    workers = workers or worker_count()
    limit = settings.max_in_flight * workers
    body_s = settings.body_timeout_s
    retry = f" hdr retry-after {RETRY_AFTER_S}"
    errors = [
        _json_error(408, f"request: expected headers and body complete within {body_s:g} s "
                         f"(LEADSCORE_BODY_TIMEOUT_S), found them incomplete by then"),
        _json_error(500, "front: expected to pass the request on, found an internal error"),
        _json_error(502, f"scoring worker: expected an answer, found the connection to it broken (restarting or "
                         f"down); retry after {RETRY_AFTER_S} s", retry),
        _json_error(503, f"scoring worker: expected one listening, found none (starting, restarting or down); "
                         f"retry after {RETRY_AFTER_S} s", retry),
        _json_error(504, f"request: expected an answer within {TRAFFIC_TIMEOUT_S} s, found none by then"),
    ]
    return "\n".join([
        "# Written by leadscore (serving/front.py) from the service's settings; do not edit, re-run.",
        "global",
        "    nbthread 1",
        f"    maxconn {MAX_CONNECTIONS}",
        f"    tune.bufsize {BUFFER_BYTES}",
        "",
        "defaults",
        "    mode http",
        "    option http-buffer-request",
        f"    timeout connect {CONNECT_TIMEOUT_S}s",
        f"    timeout http-request {round(body_s * 1000)}ms",  # HAProxy reads no decimals
        f"    timeout client {KEEP_ALIVE_S}s",
        f"    timeout http-keep-alive {KEEP_ALIVE_S}s",
        f"    timeout server {TRAFFIC_TIMEOUT_S + 10}s",
        *errors,
        "",
        "frontend leadscore",
        f"    bind {bind}",
        f"    acl health path {' '.join(sorted(EXEMPT_PATHS))}",
        f"    acl full srv_conn(worker/worker) ge {limit}",
        f"    acl streamed req.hdr_val(content-length) gt {BUFFERED_BODY_BYTES}",
        "    acl streamed req.hdr(transfer-encoding) -m found",
        f"    http-request return status 503 content-type application/json string "
        f"{_quoted(over_capacity(limit, 'in this worker' if workers == 1 else f'in its {workers} workers'))}"
        f"{retry} if full !health !streamed",
        "    use_backend streamed if streamed",
        "    default_backend worker",
        "",
        "backend worker",
        "    http-reuse always",
        f"    server worker {upstream}",
        "",
        "# The same worker, for bodies the front does not hold whole: not in the front's count.",
        "backend streamed",
        "    http-reuse always",
        f"    server worker {upstream}",
        "",
    ])


def write_config(folder: Path, settings, bind: str, upstream: str, workers: int | None = None,
                 haproxy: str | None = None) -> Path:
    """The configuration in ``folder``, checked by HAProxy itself (``haproxy -c``)."""
    haproxy = haproxy or binary()
    if haproxy is None:
        raise FrontError("front: expected haproxy on PATH, found none (Debian/Ubuntu: apt-get install haproxy, "
                         "or `bash scripts/system-deps.sh`; or serve without it: --front none)")
    path = Path(folder) / "haproxy.cfg"
    path.write_text(haproxy_config(settings, bind, upstream, workers))
    check = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    if check.returncode != 0:
        alerts = [line for line in (check.stderr + check.stdout).splitlines() if "[ALERT]" in line]
        raise FrontError(f"front: HAProxy refused {path}: {' '.join(alerts)[:500] or check.returncode}")
    return path


def command(config: Path, haproxy: str | None = None) -> list[str]:
    """HAProxy in the foreground (``-db``) with ``config``: a child process that ends with its parent's signal."""
    return [haproxy or binary() or "haproxy", "-db", "-f", str(config)]


def run_both(worker: list[str], front: list[str], env: dict | None = None) -> int:
    """Start the worker and the front; when either ends, or on SIGINT/SIGTERM, stop the other.
    The exit code of the one that ended first (0 when stopped by a signal)."""
    import signal
    import time

    stopped: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: stopped.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = []
    try:
        procs = [subprocess.Popen(worker, env=env), subprocess.Popen(front, env=env)]
        while not stopped:
            ended = [p for p in procs if p.poll() is not None]
            if ended:
                return ended[0].returncode
            time.sleep(0.2)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
