"""Strict inputs of the API: dates read one way, booleans are not numbers, numeric text only when
it is exactly a number, no lead scored before it existed; the warnings reps read in their language.

The request body goes through FastAPI exactly as in the service (JSON parsed, the pydantic request
model validated, the service's own 422 handler) on a small app with just that route: the service's
BentoML app can be built once per process, and ``test_service`` builds it. Scoring goes through
``ScoringCore`` with the trained champion, as ``test_faults`` does.
"""

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.testclient import TestClient

from leadscore.serving import schemas
from leadscore.serving.schemas import ScoreRequest
from tests.serving.test_faults import _core, _score, _settings


@pytest.fixture(scope="module")
def api():
    from leadscore.serving.service import _invalid

    app = FastAPI()
    app.add_exception_handler(RequestValidationError, _invalid)

    @app.post("/score")
    def score(body: ScoreRequest) -> dict:
        return body.model_dump(mode="json")

    with TestClient(app) as client:
        yield client


def _post(api, body):
    return api.post("/score", content=json.dumps(body), headers={"content-type": "application/json"})


def _lead(lead_id="X1", created_at="2025-01-01T00:00:00", **extra):
    return {"lead": {"lead_id": lead_id, "created_at": created_at, **extra}, "activities": []}


def _one(**extra):
    return {"leads": [_lead(**extra)]}


def _error(resp, field):
    """The one 422 error entry whose location ends with ``field``."""
    assert resp.status_code == 422, resp.text
    found = [e for e in resp.json()["detail"] if e["loc"][-1] == field]
    assert found, resp.text
    return found[0]


# --- booleans are not numbers, numeric text only when exact


@pytest.mark.parametrize("field", ["employees", "annual_revenue"])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_for_a_number_is_a_422_naming_the_field(api, field, value):
    error = _error(_post(api, _one(**{field: value})), field)
    assert error["loc"] == ["body", "leads", 0, "lead", field]
    assert "expected a number" in error["msg"] and "boolean" in error["msg"]


@pytest.mark.parametrize("text, number", [("250", 250), ("1.5e3", 1500), (" 42 ", 42), ("0.5", 0.5), ("+7", 7)])
def test_numeric_text_as_crms_send_it_is_read_exactly(api, text, number):
    resp = _post(api, _one(employees=text, annual_revenue=text))
    assert resp.status_code == 200, resp.text
    lead = resp.json()["leads"][0]["lead"]
    assert lead["employees"] == number and lead["annual_revenue"] == number


def test_empty_text_is_missing_as_null_is(api):
    resp = _post(api, _one(employees="", annual_revenue="  "))
    assert resp.status_code == 200, resp.text
    lead = resp.json()["leads"][0]["lead"]
    assert lead["employees"] is None and lead["annual_revenue"] is None


@pytest.mark.parametrize("text", ["250 employees", "NaN", "nan", "inf", "-Infinity", "1,500", "1.500,5", "0x10",
                                  "1_000", "250€", "zwei"])
def test_text_that_is_not_exactly_a_number_is_a_422(api, text):
    error = _error(_post(api, _one(employees=text)), "employees")
    # What was sent is not echoed (it may be personal data from a mismapped CRM field), only its length.
    assert "expected a number such as 250" in error["msg"] and repr(text) not in error["msg"]
    assert f"({len(text)} characters)" in error["msg"]


def test_numeric_text_keeps_the_range_checks(api):
    assert "greater than or equal to 0" in _error(_post(api, _one(employees="-5")), "employees")["msg"]
    assert "finite" in _error(_post(api, _one(employees="1e400")), "employees")["msg"]


@pytest.mark.parametrize("value, kind", [("3", "text"), (True, "a boolean"), ("three", "text")])
def test_top_k_must_be_a_json_integer(api, value, kind):
    error = _error(_post(api, {**_one(), "top_k": value}), "top_k")
    assert "expected an integer" in error["msg"] and kind in error["msg"]
    assert _post(api, {**_one(), "top_k": 2.5}).status_code == 422


def test_top_k_as_a_number_is_fine(api):
    assert _post(api, {**_one(), "top_k": 5}).json()["top_k"] == 5


# --- dates: one parser, never a guess


@pytest.mark.parametrize("field", ["created_at", "occurred_at", "as_of"])
@pytest.mark.parametrize("text", ["03.06.2025", "06/03/2025", "2025-13-01", "03.06.25", "1714000000"])
def test_ambiguous_or_impossible_dates_are_a_422(api, field, text):
    body = _one()
    if field == "occurred_at":
        body["leads"][0]["activities"] = [{"occurred_at": text, "activity_type": "email_open"}]
    elif field == "as_of":
        body["as_of"] = text
    else:
        body["leads"][0]["lead"]["created_at"] = text
    error = _error(_post(api, body), field)
    assert f"{field}: expected" in error["msg"] and text not in error["msg"], error


@pytest.mark.parametrize("field", ["created_at", "occurred_at", "as_of"])
def test_a_number_for_a_date_is_a_422_not_a_guessed_unix_time(api, field):
    body = _one()
    if field == "occurred_at":
        body["leads"][0]["activities"] = [{"occurred_at": 1714000000, "activity_type": "email_open"}]
    elif field == "as_of":
        body["as_of"] = 1714000000
    else:
        body["leads"][0]["lead"]["created_at"] = 1714000000
    assert "found a number" in _error(_post(api, body), field)["msg"]


def test_offsets_are_converted_to_naive_utc(api):
    body = _one(created_at="2025-01-01T10:00:00+02:00")
    body["leads"][0]["activities"] = [{"occurred_at": "2025-01-02T00:30:00+01:00", "activity_type": "email_open"}]
    body["as_of"] = "2025-01-05T00:00:00Z"
    out = _post(api, body).json()
    assert out["leads"][0]["lead"]["created_at"] == "2025-01-01T08:00:00"
    assert out["leads"][0]["activities"][0]["occurred_at"] == "2025-01-01T23:30:00"
    assert out["as_of"] == "2025-01-05T00:00:00"


@pytest.fixture
def german_dates(monkeypatch):
    monkeypatch.setenv("LEADSCORE_DATE_FORMAT", "de")
    schemas.date_format.cache_clear()
    yield
    monkeypatch.undo()
    schemas.date_format.cache_clear()


def test_german_dates_are_read_day_first_when_the_setting_says_so(api, german_dates):
    body = _one(created_at="03.06.2025")
    body["leads"][0]["activities"] = [{"occurred_at": "04.06.2025 14:05", "activity_type": "email_open"}]
    body["as_of"] = "2025-06-10"
    out = _post(api, body)
    assert out.status_code == 200, out.text
    assert out.json()["leads"][0]["lead"]["created_at"] == "2025-06-03T00:00:00"  # 3 June, not March 6
    assert out.json()["leads"][0]["activities"][0]["occurred_at"] == "2025-06-04T14:05:00"
    refused = _error(_post(api, _one(created_at="06/03/2025")), "created_at")["msg"]
    assert "slashes" in refused and "06/03/2025" not in refused  # says why, never echoes the value


def test_iso_is_the_default(api):
    schemas.date_format.cache_clear()
    assert schemas.date_format() == "iso"
    assert "LEADSCORE_DATE_FORMAT=de" in _error(_post(api, _one(created_at="03.06.2025")), "created_at")["msg"]


# --- no lead scored before it existed


def test_as_of_before_created_at_is_a_422_naming_the_lead_by_position(api):
    body = {"leads": [_lead("A1", "2025-01-01T00:00:00"), _lead("A2", "2025-02-01T00:00:00"),
                      _lead("A3", "2025-06-01T09:30:00")], "as_of": "2025-03-01T00:00:00"}
    resp = _post(api, body)
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["detail"]
    msg = error["msg"]
    assert "leads[2].lead.created_at" in msg and "leads[0]" not in msg and "leads[1]" not in msg
    # located by position; neither the dates nor the lead id sent are echoed
    assert "2025-06-01T09:30:00" not in msg and "2025-03-01T00:00:00" not in msg and "A3" not in msg


def test_the_message_names_no_personal_data(api):
    body = {"leads": [_lead("A1", "2025-06-01", email="jana.kraus@example.de", company="Kraus GmbH")],
            "as_of": "2025-03-01"}
    resp = _post(api, body)
    assert resp.status_code == 422 and "jana" not in resp.text and "Kraus" not in resp.text, resp.text


def test_as_of_equal_to_created_at_and_history_before_created_at_are_fine(api):
    body = {"leads": [_lead("A1", "2025-03-01T00:00:00")], "as_of": "2025-03-01T00:00:00"}
    # CRMs import a lead's earlier history: an activity before created_at is not an error.
    body["leads"][0]["activities"] = [{"occurred_at": "2024-11-01T00:00:00", "activity_type": "webinar_attended"}]
    assert _post(api, body).status_code == 200


def test_without_as_of_a_created_at_after_now_is_a_422(api):
    later = (datetime.now(timezone.utc) + timedelta(days=2)).replace(tzinfo=None).isoformat(timespec="seconds")
    error = _error(_post(api, _one(created_at=later)), "created_at")
    assert error["loc"] == ["body", "leads", 0, "lead", "created_at"]
    assert "not in the future" in error["msg"] and later not in error["msg"] and "now is" in error["msg"]


# --- warnings reps read, in their language


def test_warnings_are_german_when_the_request_is(trained, tmp_path, demo_dir):
    from leadscore.features.contract import read_export
    from leadscore.features.snapshots import scoring_snapshots
    from tests.serving.test_service import request_for

    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=30)
    ids = scoring_snapshots(export, as_of)["lead_id"].head(1).tolist()
    body = request_for(export, ids, as_of)
    body["leads"][0]["lead"]["country"] = "Deutschland"
    body["leads"][0]["activities"].append({"occurred_at": (as_of - pd.Timedelta(days=2)).isoformat(),
                                           "activity_type": "hologram_call"})
    core = _core(_settings(tmp_path))
    assert core.model is not None
    de = _score(core, ScoreRequest.model_validate({**body, "language": "de"}))[0].out.warnings
    en = _score(core, ScoreRequest.model_validate({**body, "language": "en"}))[0].out.warnings
    assert "Land: Wert „Deutschland“ ist dem Modell unbekannt und zählt als fehlend" in de, de
    assert any(w.startswith("Aktivitätstyp „hologram_call“") and "(1×)" in w for w in de), de
    assert "country: unknown value 'Deutschland', scored as missing" in en, en
    assert "activity_type 'hologram_call': unknown to the model, ignored (1×)" in en, en


def test_a_column_left_out_by_features_exclude_is_accepted_and_ignored():
    """After a team excludes a column (features.exclude), its CRM keeps sending it: not a 422."""
    from types import SimpleNamespace

    from leadscore.serving.service import _known_attributes

    rules = SimpleNamespace(spec=SimpleNamespace(profile_columns=["industry"]))
    model = SimpleNamespace(spec=SimpleNamespace(profile_columns=["seats"], excluded={"sdr_rating": "set by sales"}))
    known = _known_attributes(SimpleNamespace(rules=rules, model=model))
    assert {"industry", "seats", "sdr_rating"} <= known
    assert "sdr_rating" not in _known_attributes(SimpleNamespace(rules=rules, model=None))


def test_an_attribute_no_scorer_reads_is_dropped_on_arrival(trained, tmp_path, demo_dir, monkeypatch):
    """A CRM that maps a personal field ("telefon", "kontakt") sends it with every lead; the API accepts
    what it cannot use, but the value never enters the lead's profile (nor anything built from it)."""
    from leadscore.features.contract import read_export
    from leadscore.features.snapshots import scoring_snapshots
    from leadscore.serving import core as core_module
    from leadscore.serving import live
    from tests.serving.test_service import request_for

    export = read_export(demo_dir)
    as_of = export.data_end - pd.Timedelta(days=30)
    body = request_for(export, scoring_snapshots(export, as_of)["lead_id"].head(2).tolist(), as_of)
    for item in body["leads"]:
        item["lead"].update({"telefon": "+49 170 1234567", "kontakt": "anna.schmidt@acme.de"})
    seen = []
    real = live.inputs
    def spy(item, reads=None):
        if reads is not None:  # a request's lead (the model check's test lead passes none)
            seen.append(real(item, reads))
        return real(item, reads)

    monkeypatch.setattr(core_module.live, "inputs", spy)
    core = _core(_settings(tmp_path))
    assert core.model is not None and core.profile_reads
    scored = _score(core, ScoreRequest.model_validate(body))
    assert len(scored) == 2 and all(s.out.status == "scored" for s in scored)
    assert len(seen) == 2
    assert all("telefon" not in profile and "kontakt" not in profile for profile, _ in seen)
    assert "+49 170" not in json.dumps([s.out.model_dump(mode="json") for s in scored])
    # without the reads (the model check's test lead) every attribute is kept: the filter is the reads
    item = ScoreRequest.model_validate(body).leads[0]
    assert "telefon" in live.inputs(item)[0] and "telefon" not in live.inputs(item, {"seats"})[0]
