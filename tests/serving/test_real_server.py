"""One real `bentoml serve` process, talked to over HTTP: the contract, schemathesis, the card in Chromium."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots
from tests.browser import dump_dom, screenshot
from tests.conftest import API_KEY
from tests.serving.live import free_port, read_until, trickling, wait_ready
from tests.serving.test_service import request_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BODY_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """The service as `leadscore serve` starts it, with its own ledger; yields (base URL, log file)."""
    port = free_port()
    work = tmp_path_factory.mktemp("server")
    bentoml = Path(sys.executable).with_name("bentoml")
    log_file = work / "server.log"
    log = open(log_file, "w")
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "LEADSCORE_LEDGER_URL": f"sqlite:///{work / 'ledger.db'}",
           "BENTOML_HOME": str(work / "bentoml"), "LEADSCORE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    proc = subprocess.Popen(
        [str(bentoml), "serve", "leadscore.serving.service:LeadScoring", "--host", "127.0.0.1", "--port", str(port),
         "--working-dir", str(ROOT)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", proc, 120, lambda: log_file.read_text()[-3000:])
        yield base, log_file
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


@pytest.fixture(scope="module")
def fronted(server, tmp_path_factory):
    """HAProxy before the same server, as `leadscore serve` puts it there (serving/front.py)."""
    from leadscore.config.settings import Settings
    from leadscore.serving import front

    base, log_file = server
    port = free_port()
    folder = tmp_path_factory.mktemp("front")
    config = front.write_config(folder, Settings(body_timeout_s=BODY_TIMEOUT_S), f"127.0.0.1:{port}",
                                base.removeprefix("http://"))
    proc = subprocess.Popen(front.command(config), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    fronted_base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{fronted_base}/readyz", proc, 10, lambda: "HAProxy exited")
        yield fronted_base, log_file
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.server
@pytest.mark.parametrize("via", ["server", "fronted"])
def test_bentoml_serve_answers_score(via, request, demo_dir):
    server = request.getfixturevalue(via)
    base, _ = server
    export = read_export(demo_dir)
    ids = scoring_snapshots(export, export.data_end)["lead_id"].head(3).tolist()
    body = request_for(export, ids, export.data_end)
    assert httpx.post(f"{base}/score", json=body, timeout=30).status_code == 401
    resp = httpx.post(f"{base}/score", json=body, headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [r["lead_id"] for r in out] == ids
    assert all(r["scorer"] == "model" for r in out), out[0]["fallback_reason"]
    assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
    assert httpx.post(f"{base}/reload", headers=AUTH, timeout=30).json()["scorer"] == "model"


@pytest.mark.server
def test_schemathesis_finds_no_server_error(server, tmp_path):
    """≥ 1,000 generated requests against the OpenAPI spec (all phases, fixed seed): no 5xx."""
    base, log_file = server
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "run", f"{base}/docs.json", "--header", f"Authorization: Bearer {API_KEY}",
         "--checks", "not_a_server_error", "--max-examples", "80", "--seed", "7", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= 1000, output[-2000:]
    statuses = re.findall(r'"status": (\d+)', log_file.read_text())
    assert len(statuses) >= 1000 and not [s for s in statuses if s.startswith("5")]


@pytest.mark.server
def test_lead_card_renders_in_chromium(server, demo_dir):
    """A CRM opens the signed card link in an iframe: the page renders with the score and reasons."""
    base, _ = server
    export = read_export(demo_dir)
    as_of = export.data_end
    ids = scoring_snapshots(export, as_of)["lead_id"].iloc[30:31].tolist()
    body = request_for(export, ids, as_of)
    first = httpx.post(f"{base}/score", json={**body, "as_of": (as_of - pd.Timedelta(days=20)).isoformat()},
                       headers=AUTH, timeout=30).json()[0]
    second = httpx.post(f"{base}/score", json=body, headers=AUTH, timeout=30).json()[0]
    ARTIFACTS.mkdir(exist_ok=True)
    for lang in ("en", "de"):
        link = httpx.post(f"{base}/leads/{ids[0]}/card-link", params={"lang": lang}, headers=AUTH, timeout=30).json()
        url = base + link["url"]
        dom = dump_dom(url)
        assert ids[0] in dom and f">{second['score']}<" in dom.replace(" ", ""), dom[:2000]
        assert f'<html lang="{lang}">' in dom
        png = ARTIFACTS / f"card_served_{lang}.png"
        screenshot(url, png, width=720, height=1100)
        assert png.stat().st_size > 10_000
    assert second["previous_score"] == first["score"]
    # Without the signature (or the key) the card stays closed.
    assert httpx.get(f"{base}/leads/{ids[0]}/card", timeout=10).status_code == 401


@pytest.mark.server
def test_server_logs_are_json_without_personal_data_or_keys(server, demo_dir):
    base, log_file = server
    export = read_export(demo_dir)
    ids = scoring_snapshots(export, export.data_end)["lead_id"].iloc[50:55].tolist()
    body = request_for(export, ids, export.data_end)
    assert httpx.post(f"{base}/score", json=body, headers=AUTH, timeout=30).status_code == 200
    httpx.get(f"{base}/leads/{ids[0]}/history", headers=AUTH, timeout=30)
    time.sleep(0.5)
    text = log_file.read_text()
    ours = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(r["message"] == "request" and r["path"].startswith("/leads/~") for r in ours)
    emails = [x["lead"]["email"] for x in body["leads"] if x["lead"].get("email")]
    assert emails and not any(e in text for e in emails)
    assert not any(i in text for i in ids)
    assert API_KEY not in text


@pytest.mark.server
@pytest.mark.parametrize("via", ["server", "fronted"])
def test_slow_bodies_hold_no_slot_and_are_cut_off_with_408(via, request, demo_dir):
    """On main 8 authenticated connections sending their body one byte at a time held every in-flight
    slot (a slot was taken before the body was read) and everyone else got 503. Now 12 such clients
    (more than the 8 slots) hold connections only: a complete request beside them is answered by the
    model, and each trickling one gets 408 at LEADSCORE_BODY_TIMEOUT_S: from the worker, or from the
    front before it."""
    base, _ = request.getfixturevalue(via)
    host, port = base.removeprefix("http://").split(":")
    export = read_export(demo_dir)
    ids = scoring_snapshots(export, export.data_end)["lead_id"].iloc[60:62].tolist()
    body = json.dumps(request_for(export, ids[:1], export.data_end)).encode()
    head = (f"POST /score HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with trickling(host, int(port), head, body, clients=12, every_s=0.2, timeout=BODY_TIMEOUT_S + 10) as slow:
        time.sleep(0.5)
        t0 = time.monotonic()
        resp = httpx.post(f"{base}/score", json=request_for(export, ids[1:], export.data_end), headers=AUTH, timeout=10)
        assert resp.status_code == 200, resp.text[:300]
        assert resp.json()[0]["scorer"] == "model" and time.monotonic() - t0 < 2
        answers = [read_until(s, b"\r\n\r\n").split(b"\r\n", 1)[0] for s in slow]
    assert [a.split(b" ")[:2] for a in answers] == [[b"HTTP/1.1", b"408"]] * 12, answers
