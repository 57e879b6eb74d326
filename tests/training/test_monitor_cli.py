"""`leadscore drift` and `leadscore attribution` on the demo export, end to end."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.features.contract import read_export
from tests.conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


def test_attribution_writes_tables_and_plot(demo_dir, tmp_path):
    out = tmp_path / "attribution"
    result = CliRunner().invoke(app, ["attribution", "--data", str(demo_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    export = read_export(demo_dir)
    won = int((export.opportunities["stage"] == "won").sum())
    assert f"{won:,} won deals" in result.output
    for name in ("attribution_channel.csv", "attribution_campaign.csv", "attribution_channel.png", "attribution.html"):
        assert (out / name).stat().st_size > 0
    _renders(out / "attribution.html", "report_attribution.png", [f"{won:,} won deals", 'id="channel-table"',
                                                                  'id="campaign-table"', "position based"])


def _renders(page, png_name, expected):
    """The report opens in headless Chromium with what it must show; a screenshot is kept."""
    from tests.browser import dump_dom, screenshot

    dom = dump_dom(page)
    assert all(text in dom for text in expected), [text for text in expected if text not in dom]
    assert "<img" in dom and "data:image/png;base64," in dom
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot(page, ARTIFACTS / png_name, width=1100, height=1400)
    assert (ARTIFACTS / png_name).stat().st_size > 20_000


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 — the http.server interface
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Hook.received
    server.shutdown()


def _params_file(tmp_path, **monitor):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["monitor"].update(monitor)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_drift_reports_every_feature_and_exits_2_with_a_webhook_when_a_threshold_is_crossed(
        trained, demo_dir, tmp_path, webhook):
    url, received = webhook
    calm = tmp_path / "calm"
    result = CliRunner().invoke(app, ["drift", "--data", str(demo_dir), "--dataset", str(trained["dataset"]),
                                      "--out", str(calm), "--webhook", url,
                                      "--params", str(_params_file(tmp_path, psi_warn=50.0, psi_alert=100.0))])
    assert result.exit_code == 0, result.output
    summary = json.loads((calm / "drift.json").read_text())
    assert summary["features"] == len(trained["model"].spec.names) and summary["alerts"] == []
    assert summary["recent_snapshots"] > 0 and summary["reference_rows"] > 0 and received == []
    assert (calm / "drift.png").stat().st_size > 0
    _renders(calm / "drift.html", "report_drift.png",
             ['id="drift-table"', "older than", f"0 of {summary['features']} features moved a lot"])
    # The same data with a threshold every feature crosses: exit 2, and the webhook hears it.
    strict = tmp_path / "strict"
    result = CliRunner().invoke(app, ["drift", "--data", str(demo_dir), "--dataset", str(trained["dataset"]),
                                      "--out", str(strict), "--webhook", url,
                                      "--params", str(_params_file(tmp_path, psi_warn=1e-9, psi_alert=2e-9))])
    assert result.exit_code == 2, result.output
    alerts = json.loads((strict / "drift.json").read_text())["alerts"]
    assert alerts and len(received) == 1 and received[0]["event"] == "leadscore.drift"
    assert received[0]["alerts"] == alerts


def test_monitor_thresholds_must_be_ordered(tmp_path):
    from leadscore.config.params import ParamsError, load_params

    with pytest.raises(ParamsError, match="psi_warn"):
        load_params(_params_file(tmp_path, psi_warn=0.3, psi_alert=0.2))


def test_monitor_without_the_pseudonym_key_says_so(demo_dir, tmp_path, monkeypatch):
    from datetime import datetime

    from leadscore.serving.ledger import Ledger, LedgerEntry, pseudonym

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.record([LedgerEntry(lead_key=pseudonym("L000001", b"k"), as_of=datetime(2026, 1, 1), scored_at=datetime(2026, 1, 1),
                               scorer="model", model_version="1", probability=0.2, score=20, grade="B", reasons=[],
                               features={})])
    ledger.close()
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("LEADSCORE_PSEUDONYM_KEY")
    result = CliRunner().invoke(app, ["monitor", "--data", str(demo_dir), "--ledger", url, "--out", str(tmp_path / "m"),
                                      "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1 and "LEADSCORE_PSEUDONYM_KEY" in result.output, result.output
