"""/metrics is for operators: behind a key, route templates as labels, bounded series, one folder
per service instance. BentoML's own open /metrics is switched off, proved on a real server."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import API_KEY
from tests.serving.live import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
METRICS_KEY = "metrics-only-" + os.urandom(6).hex()
SERIES = re.compile(r"^(leadscore_\w+)\{([^}]*)\} ", re.M)


@pytest.fixture(scope="module")
def client(trained):
    os.environ["LEADSCORE_METRICS_KEYS"] = METRICS_KEY
    from leadscore.serving.service import LeadScoring

    try:
        with TestClient(LeadScoring.to_asgi(), headers=AUTH) as c:
            yield c
    finally:
        os.environ.pop("LEADSCORE_METRICS_KEYS", None)


def _series(text: str) -> set[tuple[str, str]]:
    return set(SERIES.findall(text))


def test_metrics_need_the_api_key_or_the_metrics_key_which_opens_nothing_else(client):
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics").status_code == 200
    by_metrics_key = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert by_metrics_key.status_code == 200 and by_metrics_key.headers["content-type"].startswith("text/plain")
    for path in ("/metadata", "/leads/L1/history", "/card"):
        assert client.get(path, headers={"Authorization": f"Bearer {METRICS_KEY}"}).status_code == 401


def test_labels_are_route_templates_and_the_series_stay_bounded(client):
    ids = [f"SECRET-LEAD-{i}" for i in range(40)]
    for lead_id in ids[:5]:
        client.get(f"/leads/{lead_id}/history")
    before = _series(client.get("/metrics").text)
    for lead_id in ids:  # many more leads, many unknown paths: no new series
        client.get(f"/leads/{lead_id}/history")
        client.get(f"/nowhere/{lead_id}")
        client.get(f"/leads/{lead_id}/card", headers={"Authorization": ""})
    text = client.get("/metrics").text
    after = _series(text)
    assert not any("SECRET-LEAD" in labels for _, labels in after), text[:2000]
    assert 'route="/leads/{lead_id}/history"' in text and 'status="404"' in text
    # unknown paths never reach the app (BentoML answers 404 for them) and add no series either
    grown = {s for s in after - before if "SECRET" not in s[1]}
    # only the first unknown path, the first 401 card and the first /metrics read add series
    assert len(grown) <= 3 * 14, sorted(grown)
    count = re.search(r'leadscore_http_requests_total\{method="GET",route="/leads/\{lead_id\}/history",status="404"\} (\S+)', text)
    assert count and float(count.group(1)) >= 45


def test_scores_are_counted_by_scorer(client, demo_dir):
    from tests.serving.test_service import _body

    _, _, ids, body = _body(demo_dir, 2, skip=60)
    assert client.post("/score", json=body).status_code == 200
    text = client.get("/metrics").text
    assert re.search(r'leadscore_scores_total\{fallback="none",scorer="model"\} [1-9]', text), text[-1500:]


def test_each_instance_has_its_own_folder_outside_bentoml_home():
    from leadscore.serving.security import Metrics

    metrics = Metrics()
    metrics.observe("/score", "POST", 200, 0.01)
    folder = metrics.folder
    assert folder is not None and folder.name.startswith(f"{os.getpid()}-")
    assert "bentoml" not in str(folder) and (folder / f"counter_{os.getpid()}.db").exists()
    # another instance (another process) writes elsewhere and is not summed here
    code = ("from leadscore.serving.security import Metrics; m = Metrics(); "
            "m.observe('/score', 'POST', 200, 0.01); print(m.folder)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert Path(other.stdout.strip()) != folder
    rendered = metrics.render()[0].decode()
    assert 'route="/score",status="200"}' in rendered and "_total_total" not in rendered


# --- a real `bentoml serve`: BentoML's own /metrics no longer answers


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    port, work = free_port(), tmp_path_factory.mktemp("metrics-server")
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(work / "bentoml"),
           "LEADSCORE_LEDGER_URL": f"sqlite:///{work / 'ledger.db'}", "LEADSCORE_CACHE_DIR": str(work / "cache"),
           "LEADSCORE_METRICS_KEYS": METRICS_KEY}
    log_file = work / "server.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("bentoml")), "serve", "leadscore.serving.service:LeadScoring",
             "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(ROOT)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=work)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{base}/readyz", proc, 180, lambda: log_file.read_text()[-3000:])
            yield base, proc.pid, work
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)


@pytest.mark.server
def test_on_a_real_server_metrics_are_closed_templated_and_per_instance(server):
    base, pid, work = server
    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401  # BentoML's open route is gone
    assert httpx.get(f"{base}/livez", timeout=10).status_code == 200
    for lead_id in ("LEAK-1", "LEAK 2", "LEAK/3"):
        httpx.get(f"{base}/leads/{lead_id.replace(' ', '%20').replace('/', '%2F')}/history", headers=AUTH, timeout=10)
    resp = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}, timeout=10)
    assert resp.status_code == 200
    assert "LEAK" not in resp.text and "bentoml_service_request" not in resp.text, resp.text[:1500]
    assert 'route="/leads/{lead_id}/history"' in resp.text
    # the instance's folder is named by the `bentoml serve` process; BentoML's shared one stays empty
    base_dir = Path(__import__("tempfile").gettempdir()) / f"leadscore-metrics-{os.getuid()}"
    assert [p for p in base_dir.iterdir() if p.name.startswith(f"{pid}-")]
    shared = work / "bentoml" / "prometheus_multiproc_dir"
    assert not shared.exists() or not any(shared.iterdir())


@pytest.mark.server
def test_on_a_real_server_a_card_link_works_for_ids_that_need_encoding(server, demo_dir):
    from leadscore.features.contract import read_export
    from leadscore.features.snapshots import scoring_snapshots
    from tests.serving.test_service import request_for

    base, _, _ = server
    export = read_export(demo_dir)
    source = scoring_snapshots(export, export.data_end)["lead_id"].iloc[70:71].tolist()
    odd = ["L 1", "a/b", "100%", "Zoë"]
    body = request_for(export, source * len(odd), export.data_end)
    for item, lead_id in zip(body["leads"], odd):
        item["lead"]["lead_id"] = lead_id
    assert httpx.post(f"{base}/score", json=body, headers=AUTH, timeout=30).status_code == 200
    from urllib.parse import quote

    for lead_id in odd:
        link = httpx.post(f"{base}/leads/{quote(lead_id, safe='')}/card-link", headers=AUTH, timeout=10).json()["url"]
        assert httpx.get(base + link, timeout=10).status_code == 200, lead_id
    link = httpx.post(f"{base}/leads/L%201/card-link", headers=AUTH, timeout=10).json()["url"]
    query = link.split("?", 1)[1]
    assert httpx.get(f"{base}/leads/L%25201/card?{query}", timeout=10).status_code == 401
    assert httpx.get(f"{base}/leads/a/b/card?" + httpx.post(
        f"{base}/leads/a%2Fb/card-link", headers=AUTH, timeout=10).json()["url"].split("?", 1)[1], timeout=10).status_code == 200
