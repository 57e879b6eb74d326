"""Shedding in uvicorn's protocol (``serving.admission.SheddingProtocol``), over a real socket.

On main every 503 under overload was an asyncio task that passed uvicorn's proxy-header middleware
and two ``send`` calls before the admission layer answered it (~27 % of the event loop at 25×
overload, and a caller's 503 waited behind all of them). These tests run uvicorn in a thread with
the protocol and an app that holds its one slot, and talk raw HTTP/1.1 to it, so that keep-alive,
bodies still arriving and pipelined requests are what a real client sends.
"""

import asyncio
import contextlib
import json
import socket
import threading
import time

import pytest
import uvicorn

from leadscore.serving import admission as adm

pytestmark = pytest.mark.skipif(adm.HttpToolsProtocol is None, reason="uvicorn without httptools")


class Outer:
    """Stands for what uvicorn puts around the app (its proxy-header middleware): counts ASGI calls."""

    def __init__(self, app):
        self.app, self.calls = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.calls.append(scope["path"])
        await self.app(scope, receive, send)


class Held:
    """``/hold`` waits until ``release`` is set; everything else answers 200 with the body's length."""

    def __init__(self):
        self.release = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/hold":
            while not self.release.is_set():
                await asyncio.sleep(0.005)
        out = json.dumps({"n": len(body)}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})


@pytest.fixture
def served():
    with _serving() as running:
        yield running


@contextlib.contextmanager
def _serving(body_timeout_s: float = 5.0):
    held = Held()
    admission = adm.Admission(held, max_in_flight=lambda: 1, max_bytes=lambda: 100_000,
                              body_timeout_s=lambda: body_timeout_s)
    outer = Outer(admission)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(outer, http=adm.SheddingProtocol, loop="asyncio", lifespan="off", log_level="warning",
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1], held, admission, outer
    finally:
        held.release.set()
        server.should_exit = True
        thread.join(10)


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _request(path="/score", body=b'{"leads": []}', extra=b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
            % (path.encode(), len(body), extra)) + body


class Reader:
    """Whole HTTP/1.1 responses (content-length framed) from one connection."""

    def __init__(self, conn: socket.socket):
        self.conn, self.buf = conn, b""

    def response(self) -> tuple[int, dict, bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        return self.conn.recv(1) == b""

    def _more(self) -> None:
        chunk = self.conn.recv(65536)
        assert chunk, "connection closed"
        self.buf += chunk


def _fill(port: int, admission) -> socket.socket:
    """One request that holds the only slot until ``release``."""
    conn = _connect(port)
    conn.sendall(_request("/hold"))
    deadline = time.monotonic() + 5
    while admission.in_flight < 1:
        assert time.monotonic() < deadline, "the held request never took its slot"
        time.sleep(0.005)
    return conn


def test_over_capacity_is_answered_by_the_protocol_and_the_connection_serves_on(served):
    port, held, admission, outer = served
    holder = _fill(port, admission)
    calls_before = list(outer.calls)
    conn = _connect(port)
    reader = Reader(conn)
    conn.sendall(_request())
    status, headers, body = reader.response()
    assert status == 503 and headers["retry-after"] == "1" and "date" in headers
    assert "over capacity" in json.loads(body)["detail"]
    assert outer.calls == calls_before  # no ASGI call, no task: turned away on the headers
    assert admission.shed == 1

    held.release.set()
    assert Reader(holder).response()[0] == 200
    conn.sendall(_request(body=b"x" * 321))  # the same connection, kept alive
    status, _, body = reader.response()
    assert status == 200 and json.loads(body) == {"n": 321}
    assert admission.in_flight == 0


def test_a_body_still_arriving_is_dropped_and_the_next_request_on_it_is_read_whole(served):
    port, held, admission, outer = served
    holder = _fill(port, admission)
    conn = _connect(port)
    reader = Reader(conn)
    body = b'{"leads": [' + b" " * 5000 + b"]}"
    request = _request(body=body)
    conn.sendall(request[:200])  # headers and the start of the body
    status, _, _ = reader.response()
    assert status == 503  # before the body is complete
    time.sleep(0.05)
    conn.sendall(request[200:])
    held.release.set()
    assert Reader(holder).response()[0] == 200
    conn.sendall(_request(body=b"abc"))
    status, _, out = reader.response()
    assert status == 200 and json.loads(out) == {"n": 3}  # the dropped body did not bleed into this request


def test_pipelined_requests_over_capacity_get_one_503_each_in_order(served):
    port, held, admission, outer = served
    _fill(port, admission)
    conn = _connect(port)
    reader = Reader(conn)
    conn.sendall(_request() + _request(body=b"{}") + _request(body=b""))
    assert [reader.response()[0] for _ in range(3)] == [503, 503, 503]
    assert admission.shed == 3


def test_a_client_that_asks_to_close_gets_its_503_and_a_closed_connection(served):
    port, held, admission, outer = served
    _fill(port, admission)
    conn = _connect(port)
    reader = Reader(conn)
    conn.sendall(_request(extra=b"connection: close\r\n"))
    status, headers, _ = reader.response()
    assert status == 503 and headers["connection"] == "close"
    assert reader.closed()


def test_health_checks_pass_the_protocol_while_the_worker_is_full(served):
    port, held, admission, outer = served
    _fill(port, admission)
    conn = _connect(port)
    conn.sendall(b"GET /readyz HTTP/1.1\r\nhost: t\r\n\r\n")
    assert Reader(conn).response()[0] == 200
    assert outer.calls[-1] == "/readyz"


def test_install_makes_it_the_protocol_uvicorn_picks_for_a_worker(monkeypatch):
    import uvicorn.protocols.http.auto as auto

    monkeypatch.setattr(auto, "AutoHTTPProtocol", adm.HttpToolsProtocol)
    assert adm.install_protocol() is True
    config = uvicorn.Config(lambda scope, receive, send: None, lifespan="off")  # what BentoML's worker builds
    config.load()
    assert config.http_protocol_class is adm.SheddingProtocol
    assert adm.install_protocol() is True  # twice is once


def test_the_served_app_installs_it():
    import uvicorn.protocols.http.auto as auto

    from leadscore.serving.service import LeadScoring

    before = auto.AutoHTTPProtocol
    try:
        LeadScoring.to_asgi()
        assert auto.AutoHTTPProtocol is adm.SheddingProtocol
    finally:
        auto.AutoHTTPProtocol = before


def test_the_prepared_503_carries_the_current_date(served):
    port, held, admission, outer = served
    _fill(port, admission)
    conn = _connect(port)
    reader = Reader(conn)
    dates = []
    for _ in range(2):
        conn.sendall(_request())
        status, headers, _ = reader.response()
        assert status == 503
        dates.append(headers["date"])
        time.sleep(1.2)
    assert dates[0] != dates[1]


def test_a_shed_request_whose_body_stops_coming_loses_its_connection():
    """On main a request turned away by the protocol whose body never finished kept its connection
    open for good (no keep-alive timer runs until the body ends): a client could hold any number of
    sockets that way. Now the body of a shed request has ``body_timeout_s`` to finish, as an admitted
    one has."""
    with _serving(body_timeout_s=0.3) as (port, held, admission, outer):
        _fill(port, admission)
        conn = _connect(port)
        reader = Reader(conn)
        conn.sendall(_request(body=b"x" * 1000)[:-900])  # headers and a tenth of the body, then nothing
        assert reader.response()[0] == 503
        started = time.monotonic()
        assert reader.closed()  # not the client's 5 s socket timeout
        assert time.monotonic() - started < 3


def test_a_shed_request_whose_body_completes_keeps_its_connection_past_the_body_timeout():
    with _serving(body_timeout_s=0.3) as (port, held, admission, outer):
        holder = _fill(port, admission)
        conn = _connect(port)
        reader = Reader(conn)
        request = _request(body=b"x" * 1000)
        conn.sendall(request[:-900])
        assert reader.response()[0] == 503
        conn.sendall(request[-900:])  # the body completes in time
        time.sleep(0.6)  # past the body timeout: the cancelled timer must not close the connection
        held.release.set()
        assert Reader(holder).response()[0] == 200
        conn.sendall(_request(body=b"abc"))
        status, _, out = reader.response()
        assert status == 200 and json.loads(out) == {"n": 3}
