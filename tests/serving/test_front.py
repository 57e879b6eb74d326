"""The HAProxy front (serving/front.py), before a stand-in worker that holds requests until told.

Issue 17's goal, a 503 in under 5 ms p95 under 25× overload, was missed by the worker's own shedding
(p95 8–11 ms: its event loop answers the admitted requests too). These tests hold the front to what
the worker's admission promised, so that putting it in front loses none of it: the same 503 text and
Retry-After, health routes through when full, slow bodies hold no slot and get 408, and its own
errors in the service's JSON form where HAProxy lets them be."""

import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from leadscore.config.settings import Settings
from leadscore.serving import front
from leadscore.serving.admission import RETRY_AFTER_S, over_capacity
from tests.serving.live import free_port, read_until, trickling, wait_ready


class Worker:
    """A stand-in for the BentoML worker: POSTs wait until ``release`` is set; it counts what it saw."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[bytes] = []
        self.in_flight = 0
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._answer(200, b'{"ok": true}')

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                worker.seen.append(body)
                worker.in_flight += 1
                try:
                    worker.release.wait(30)
                finally:
                    worker.in_flight -= 1
                self._answer(200, b'{"scored": true}')

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.address = f"127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()


@contextmanager
def _front(tmp_path, upstream: str, monkeypatch, max_in_flight: int = 2, body_timeout_s: float = 1.5):
    monkeypatch.setenv("LEADSCORE_MAX_IN_FLIGHT", str(max_in_flight))
    monkeypatch.setenv("LEADSCORE_BODY_TIMEOUT_S", str(body_timeout_s))
    port = free_port()
    config = front.write_config(tmp_path, Settings(), f"127.0.0.1:{port}", upstream, workers=1)
    proc = subprocess.Popen(front.command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "HAProxy not listening after 10 s"
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.close()


def _post_in_thread(url: str, results: list) -> threading.Thread:
    def run():
        results.append(httpx.post(url, content=b'{"leads": []}', headers={"content-type": "application/json"},
                                  timeout=30))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_config_comes_from_the_services_settings(tmp_path, monkeypatch):
    """Limit, body timeout and texts are the service's own; HAProxy accepts what is written."""
    monkeypatch.setenv("LEADSCORE_MAX_IN_FLIGHT", "3")
    monkeypatch.setenv("LEADSCORE_BODY_TIMEOUT_S", "2.5")
    config = front.write_config(tmp_path, Settings(), "127.0.0.1:1", "127.0.0.1:2", workers=2)
    text = config.read_text()
    assert "srv_conn(worker/worker) ge 6" in text  # 3 per worker × 2 workers
    assert "timeout http-request 2500ms" in text
    assert json.dumps({"detail": over_capacity(6, "in its 2 workers")}) in text
    assert f"hdr retry-after {RETRY_AFTER_S} if full !health" in text
    assert "acl health path /healthz /livez /readyz" in text
    assert "\n    log " not in text and "option httplog" not in text  # paths carry lead ids


def test_without_haproxy_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(front.FrontError, match="expected haproxy on PATH, found none.*--front none"):
        front.write_config(tmp_path, Settings(), "127.0.0.1:1", "127.0.0.1:2")


def test_over_capacity_the_front_answers_503_with_the_workers_text_and_health_passes(tmp_path, monkeypatch, worker):
    """With 2 requests held in the worker, the third is the front's 503: the worker never sees it."""
    with _front(tmp_path, worker.address, monkeypatch, max_in_flight=2) as base:
        results: list = []
        threads = [_post_in_thread(f"{base}/score", results) for _ in range(2)]
        deadline = time.monotonic() + 5
        while worker.in_flight < 2:
            assert time.monotonic() < deadline, "the worker did not get the first two requests"
            time.sleep(0.01)
        t0 = time.perf_counter()
        shed = httpx.post(f"{base}/score", content=b'{"leads": []}', timeout=5)
        took_ms = (time.perf_counter() - t0) * 1000
        assert shed.status_code == 503, shed.text
        assert shed.json() == {"detail": over_capacity(2)}
        assert shed.headers["retry-after"] == str(RETRY_AFTER_S)
        assert shed.headers["content-type"] == "application/json"
        assert took_ms < 1000  # answered at once, not queued behind the two held ones
        assert len(worker.seen) == 2
        for path in ("/livez", "/readyz"):
            assert httpx.get(f"{base}{path}", timeout=5).status_code == 200, path
        worker.release.set()
        for t in threads:
            t.join(10)
        assert [r.status_code for r in results] == [200, 200]
        assert httpx.post(f"{base}/score", content=b'{"leads": []}', timeout=5).status_code == 200


def test_slow_bodies_are_held_by_the_front_and_cut_off_with_408(tmp_path, monkeypatch, worker):
    """5 clients sending their body one byte at a time (more than the 2 slots) reach no worker slot:
    a complete request beside them is answered at once, and each slow one gets the front's 408."""
    worker.release.set()
    body = json.dumps({"leads": [{"lead_id": "L1", "note": "x" * 300}]}).encode()
    with _front(tmp_path, worker.address, monkeypatch, max_in_flight=2, body_timeout_s=1.5) as base:
        host, port = base.removeprefix("http://").split(":")
        head = (f"POST /score HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with trickling(host, int(port), head, body, clients=5, every_s=0.05, timeout=10) as slow:
            time.sleep(0.3)
            resp = httpx.post(f"{base}/score", content=b'{"leads": []}', timeout=5)
            assert resp.status_code == 200, resp.text
            answers = [read_until(s, b"}") for s in slow]
        assert worker.seen == [b'{"leads": []}']  # no slow body reached the worker
        for data in answers:
            assert data.startswith(b"HTTP/1.1 408 "), data[:200]
            detail = json.loads(data.split(b"\r\n\r\n", 1)[1])["detail"]
            assert "within 1.5 s (LEADSCORE_BODY_TIMEOUT_S)" in detail


def test_large_slow_bodies_go_to_the_worker_outside_the_fronts_count(tmp_path, monkeypatch, worker):
    """A body larger than the front holds is passed on as it arrives. 4 of them trickling (more than
    the 2 slots) must not fill the front's count: with one backend for all, they did, and a complete
    request beside them got the front's 503."""
    worker.release.set()
    size = front.BUFFERED_BODY_BYTES + 50_000
    with _front(tmp_path, worker.address, monkeypatch, max_in_flight=2, body_timeout_s=5) as base:
        host, port = base.removeprefix("http://").split(":")
        head = (f"POST /score HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n").encode()
        slow = [socket.create_connection((host, int(port)), timeout=10) for _ in range(4)]
        try:
            for s in slow:
                s.sendall(head + b"x" * (size - 10))  # all but the last 10 bytes
            time.sleep(0.5)
            resp = httpx.post(f"{base}/score", content=b'{"leads": []}', timeout=5)
            assert resp.status_code == 200, resp.text
        finally:
            for s in slow:
                s.close()


def test_the_fronts_own_errors_are_json_in_the_services_form(tmp_path, monkeypatch, worker):
    """No worker listening: 503 that says so, with Retry-After, in JSON. A request HAProxy cannot
    parse: 400 (HAProxy 2.6's own HTML page, see serving/front.py), and the front serves on."""
    with _front(tmp_path, f"127.0.0.1:{free_port()}", monkeypatch) as base:
        down = httpx.post(f"{base}/score", content=b"{}", timeout=10)
        assert down.status_code == 503
        assert down.json()["detail"].startswith("scoring worker: expected one listening, found none")
        assert down.headers["retry-after"] == str(RETRY_AFTER_S)
    with _front(tmp_path, worker.address, monkeypatch) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):  # the front closes after a 400
                data += chunk
        assert data.startswith(b"HTTP/1.1 400 "), data[:200]
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
        assert worker.seen == []


def test_run_both_stops_the_other_when_one_ends():
    """`leadscore serve` with a front runs two processes: when one ends, the other is stopped and
    the exit code is the one that ended."""
    t0 = time.monotonic()
    code = front.run_both([sys.executable, "-c", "import sys; sys.exit(3)"],
                          [sys.executable, "-c", "import time; time.sleep(60)"])
    assert code == 3 and time.monotonic() - t0 < 20


@pytest.mark.server
def test_leadscore_serve_puts_the_front_before_the_worker_and_stops_both(trained, demo_dir, tmp_path):
    """The README's main command serves through `leadscore serve`: with --front haproxy the port is
    HAProxy's, the worker answers behind it, and SIGTERM ends both processes."""
    import os
    import signal
    from pathlib import Path

    import psutil

    from tests.conftest import API_KEY
    from tests.serving.test_service import request_for
    from leadscore.features.contract import read_export
    from leadscore.features.snapshots import scoring_snapshots

    port = free_port()
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(tmp_path / "bentoml"),
           "LEADSCORE_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}", "LEADSCORE_CACHE_DIR": str(tmp_path / "cache")}
    log_file = tmp_path / "serve.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("leadscore")), "serve", "--port", str(port),
                                 "--front", "haproxy"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", proc, 180, lambda: log_file.read_text()[-3000:])
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any(c.name() == "haproxy" for c in children), [c.name() for c in children]
        assert f"front: HAProxy on 127.0.0.1:{port}" in log_file.read_text()
        export = read_export(demo_dir)
        ids = scoring_snapshots(export, export.data_end)["lead_id"].head(2).tolist()
        resp = httpx.post(f"{base}/score", json=request_for(export, ids, export.data_end),
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        assert resp.status_code == 200, resp.text[:300]
        assert [r["scorer"] for r in resp.json()] == ["model", "model"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_refuses_an_unknown_front(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from leadscore.cli import app as cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--front", "nginx"])
    assert result.exit_code == 1
    assert "--front: expected auto, haproxy or none, found 'nginx'" in " ".join(result.output.split())


def test_front_config_prints_what_serve_writes(monkeypatch, tmp_path):
    """For a HAProxy run by the operator (a container, a host of its own): the same configuration."""
    from typer.testing import CliRunner

    from leadscore.cli import app as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEADSCORE_MAX_IN_FLIGHT", "5")
    result = CliRunner().invoke(cli, ["front-config", "--bind", "0.0.0.0:8080", "--upstream", "127.0.0.1:3001"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == front.haproxy_config(Settings(), "0.0.0.0:8080", "127.0.0.1:3001").strip()
    assert "srv_conn(worker/worker) ge 5" in result.output
    (tmp_path / "printed.cfg").write_text(result.output)
    assert subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "printed.cfg")], capture_output=True).returncode == 0
