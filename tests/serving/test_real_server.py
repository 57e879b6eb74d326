"""One real `bentoml serve` process, talked to over HTTP."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.contract import read_export
from features.snapshots import scoring_snapshots
from tests.serving.test_service import request_for

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.server
def test_bentoml_serve_answers_score(trained, demo_dir, tmp_path):
    port = _free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [str(bentoml), "serve", "serving.service:LeadScoring", "--host", "127.0.0.1", "--port", str(port),
         "--working-dir", str(ROOT)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "BENTOML_DO_NOT_TRACK": "True"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in 120 s"
            time.sleep(0.5)
        export = read_export(demo_dir)
        ids = scoring_snapshots(export, export.data_end)["lead_id"].head(3).tolist()
        resp = httpx.post(f"{base}/score", json=request_for(export, ids, export.data_end), timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert [r["lead_id"] for r in body] == ids
        assert all(r["scorer"] == "model" for r in body), body[0]["fallback_reason"]
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
