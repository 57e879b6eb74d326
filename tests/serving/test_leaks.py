"""Nothing the caller sent comes back in a 422; settings fail at start in one line; no ledger at /.

The 422s go through the service's own handler on a small app with the request model (as
``test_inputs`` does), so no model is trained for them.
"""

import json
import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.testclient import TestClient
from typer.testing import CliRunner

from leadscore.serving.schemas import CardRequest, ScoreRequest

EMAIL = "jana.kraus@example.de"


@pytest.fixture(scope="module")
def api():
    from leadscore.serving.service import _invalid

    app = FastAPI()
    app.add_exception_handler(RequestValidationError, _invalid)

    @app.post("/score")
    def score(body: ScoreRequest) -> dict:
        return {}

    @app.post("/card")
    def card(body: CardRequest) -> dict:
        return {}

    with TestClient(app) as client:
        yield client


def _post(api, body, path="/score"):
    return api.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def _lead(**fields):
    return {"lead": {"lead_id": "X1", "created_at": "2025-01-01T00:00:00", **fields}, "activities": []}


# A CRM that maps the wrong field sends personal data where a number, a date or an id belongs.
MISMAPPED = [
    ({"leads": [_lead(employees=EMAIL)]}, "employees"),
    ({"leads": [_lead(annual_revenue=EMAIL)]}, "annual_revenue"),
    ({"leads": [_lead(created_at=EMAIL)]}, "created_at"),
    ({"leads": [_lead(created_at="3025-01-01T00:00:00")]}, "created_at"),
    ({"leads": [{**_lead(), "activities": [{"occurred_at": EMAIL, "activity_type": "email_open"}]}]}, "occurred_at"),
    ({"leads": [_lead(seats=float("1e300") * 10)]}, "lead"),
    ({"leads": [_lead(lead_id=EMAIL), _lead(lead_id=EMAIL)]}, "leads"),
    ({"leads": [_lead(lead_id=EMAIL, created_at="2025-06-01T00:00:00")], "as_of": "2025-03-01T00:00:00"}, "as_of"),
    ({"leads": [_lead()], "top_k": EMAIL}, "top_k"),
    ({"leads": [_lead()], "language": EMAIL}, "language"),
    ({"leads": [_lead(do_not_profile=EMAIL)]}, "do_not_profile"),
    ({"leads": [_lead(country=EMAIL * 10)]}, "country"),
]


@pytest.mark.parametrize("body,field", MISMAPPED, ids=[f for _, f in MISMAPPED])
def test_a_422_names_the_field_and_what_it_expects_never_the_value(api, body, field):
    text = json.dumps(body, allow_nan=True).replace("Infinity", "1e999")
    resp = api.post("/score", content=text, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert "jana" not in resp.text and "example.de" not in resp.text and "3025" not in resp.text, resp.text
    for error in resp.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"}, error  # no input, no ctx
        assert error["msg"], error
    located = [e for e in resp.json()["detail"] if field in [str(p) for p in e["loc"]] or field in e["msg"]]
    assert located, resp.text


def test_a_mismapped_number_says_what_was_expected(api):
    (error,) = _post(api, {"leads": [_lead(employees=EMAIL)]}).json()["detail"]
    assert error["loc"] == ["body", "leads", 0, "lead", "employees"]
    assert "expected a number such as 250" in error["msg"] and f"({len(EMAIL)} characters)" in error["msg"]


def test_duplicate_ids_and_late_leads_are_located_by_position(api):
    (dup,) = _post(api, {"leads": [_lead(lead_id="A-77"), _lead(lead_id="A-77")]}).json()["detail"]
    assert "leads[1].lead.lead_id: expected unique ids, found the id of leads[0] again" in dup["msg"]
    assert "A-77" not in dup["msg"]
    (late,) = _post(api, {"leads": [_lead(), _lead(lead_id="B-9", created_at="2025-06-01T09:30:00")],
                          "as_of": "2025-03-01T00:00:00"}).json()["detail"]
    assert "found as_of before leads[1].lead.created_at" in late["msg"], late
    assert "B-9" not in late["msg"] and "09:30" not in late["msg"] and "2025-03-01" not in late["msg"]


def test_path_and_query_422s_do_not_echo_either():
    from leadscore.serving.service import _invalid

    app = FastAPI()
    app.add_exception_handler(RequestValidationError, _invalid)

    @app.get("/leads/{lead_id:path}/history")
    def history(lead_id: str, limit: int = 100) -> dict:
        return {}

    with TestClient(app) as client:
        resp = client.get("/leads/L1/history", params={"limit": EMAIL})
    assert resp.status_code == 422 and "jana" not in resp.text and resp.json()["detail"][0]["loc"] == ["query", "limit"]


# --- settings, checked at start


def test_an_invalid_setting_is_one_line_naming_it_its_range_and_what_was_found(monkeypatch):
    from leadscore.config.settings import SettingsError, get_settings

    monkeypatch.setenv("LEADSCORE_DEADLINE_MS", "5")
    monkeypatch.setenv("LEADSCORE_DATE_FORMAT", "us")
    with pytest.raises(SettingsError) as err:
        get_settings()
    message = str(err.value)
    assert "\n" not in message
    assert "LEADSCORE_DEADLINE_MS: expected an integer from 10 to 60000, found '5'" in message
    assert "LEADSCORE_DATE_FORMAT: expected one of iso, de, found 'us'" in message


def test_an_invalid_key_setting_is_named_but_never_shown():
    from leadscore.config.settings import _problem

    shown = _problem({"loc": ("api_keys",), "input": "s3cret-key-value", "msg": "bad"})
    assert shown.startswith("LEADSCORE_API_KEYS: expected") and "s3cret" not in shown


def test_serve_refuses_an_invalid_setting_without_a_traceback(monkeypatch, tmp_path):
    from leadscore.cli import app as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEADSCORE_DEADLINE_MS", "5")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "LEADSCORE_DEADLINE_MS: expected an integer from 10 to 60000, found '5'" in " ".join(output.split())
    assert "Traceback" not in output


# --- the SQLite ledger: relative to the working directory, never at /


def test_a_relative_sqlite_ledger_is_fixed_to_the_working_directory_at_start(monkeypatch, tmp_path):
    from leadscore.config.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSCORE_LEDGER_URL", raising=False)  # the session's own ledger, set by tests/conftest.py
    assert Settings(ledger_url="sqlite:///data/l.db").ledger() == f"sqlite:///{tmp_path}/data/l.db"
    assert Settings().ledger() == f"sqlite:///{tmp_path}/ledger.db"
    assert Settings(ledger_url="sqlite:////var/x/l.db").ledger() == "sqlite:////var/x/l.db"
    assert Settings(ledger_url="sqlite:///:memory:").ledger() == "sqlite:///:memory:"
    pg = "postgresql+psycopg://u:p@h/db"
    assert Settings(ledger_url=pg).ledger() == pg


@pytest.mark.parametrize("url", ["sqlite:///{name}/ledger.db", "sqlite:////{name}/sub/ledger.db", "sqlite:///{name}.db"])
def test_a_sqlite_ledger_never_creates_a_folder_or_file_at_the_root(monkeypatch, url):
    from leadscore.serving.ledger import Ledger, LedgerError

    name = f"leadscore-test-{os.getpid()}-{os.urandom(3).hex()}"
    monkeypatch.chdir("/")  # as a service started by systemd or cron
    try:
        with pytest.raises(LedgerError, match="refused to create it at the filesystem root"):
            Ledger(url.format(name=name)).ping()
        assert not Path("/", name).exists() and not Path("/", name + ".db").exists()
    finally:  # if the guard were broken, do not leave litter at /
        for leftover in (Path("/", name), Path("/", name + ".db")):
            if leftover.is_dir():
                __import__("shutil").rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()


def test_a_sqlite_ledger_below_an_existing_folder_still_creates_its_folders(tmp_path):
    from leadscore.serving.ledger import Ledger

    Ledger(f"sqlite:///{tmp_path}/a/b/ledger.db").ping()
    assert (tmp_path / "a" / "b" / "ledger.db").exists()
