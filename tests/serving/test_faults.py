"""Never down: registry gone, model file corrupt or swapped, model too slow, ledger down.

``ScoringCore`` is what every route calls; it is built here with one fault each and asked to
score. Every fallback must answer with the rules and say why; a dead ledger must not cost a score.
"""

import asyncio
import json
import logging
import os
import pickle
import time
from pathlib import Path

import pytest

from leadscore.config.settings import Settings
from leadscore.features.contract import PERSONAL_COLUMNS, read_export
from leadscore.features.snapshots import scoring_snapshots
from leadscore.models.registry import CHECKSUM_FILE, use_tracking
from tests.serving.test_service import request_for


@pytest.fixture(scope="module")
def request_body(trained, demo_dir):
    from leadscore.serving.schemas import ScoreRequest

    export = read_export(demo_dir)
    ids = scoring_snapshots(export, export.data_end)["lead_id"].head(3).tolist()
    return ScoreRequest.model_validate(request_for(export, ids, export.data_end))


def _settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", **overrides)


def _score(core, body):
    return asyncio.run(core.score(body))


def _core(settings):
    from leadscore.serving.core import ScoringCore

    return ScoringCore(settings)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def serving_log():
    handler = _Records()
    logger = logging.getLogger("leadscore.serving")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


@pytest.fixture
def registry_down(monkeypatch):
    """The tracking server is unreachable (nothing listens on port 9)."""
    from leadscore.serving.core import mlflow_fails_fast

    mlflow_fails_fast()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    yield
    monkeypatch.undo()
    use_tracking()  # MLflow keeps the last URI globally


def _model_folder(cache: Path) -> Path:
    from leadscore.models.registry import _model_folder

    (version_dir,) = [p for p in (cache / "lead-scoring").iterdir() if p.is_dir()]
    return _model_folder(version_dir)


def test_registry_down_serves_the_verified_cache(trained, tmp_path, request_body, monkeypatch):
    from leadscore.serving.core import mlflow_fails_fast

    settings = _settings(tmp_path)
    first = _core(settings)  # registry up: downloads and verifies the champion into the cache
    assert first.model is not None and first.model.origin == "registry"
    mlflow_fails_fast()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the tracking server goes away
    try:
        started = time.monotonic()
        core = _core(settings)
        assert time.monotonic() - started < 30, "start-up must not wait for minutes of retries"
    finally:
        monkeypatch.undo()
        use_tracking()
    assert core.model is not None and core.model.version == first.model.version
    assert core.model.origin.startswith("cache: registry unreachable")
    results = _score(core, request_body)
    assert all(s.out.scorer == "model" for s in results)


_TRACKING: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _remember_tracking(trained):
    _TRACKING["uri"] = os.environ["MLFLOW_TRACKING_URI"]


def test_registry_down_and_no_cache_means_rules_saying_why(trained, tmp_path, request_body, registry_down):
    core = _core(_settings(tmp_path))
    assert core.model is None and core.ready
    assert "registry unreachable" in core.fallback_reason and "no cached" in core.fallback_reason
    results = _score(core, request_body)
    assert all(s.out.scorer == "rules" and "registry unreachable" in s.out.fallback_reason for s in results)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "checksum_file"])
def test_corrupt_or_tampered_model_means_rules(trained, tmp_path, request_body, damage):
    settings = _settings(tmp_path)
    assert _core(settings).model is not None  # fills the cache
    folder = _model_folder(tmp_path / "cache")
    booster = folder / "model.lgb"
    if damage == "truncate":
        booster.write_bytes(booster.read_bytes()[: len(booster.read_bytes()) // 2])
    elif damage == "flip_byte":
        data = bytearray(booster.read_bytes())
        data[len(data) // 3] ^= 0x01
        booster.write_bytes(bytes(data))
    else:
        (folder.parent.parent / CHECKSUM_FILE).write_text(json.dumps({"sha256": "0" * 64}))
    core = _core(settings)
    assert core.model is None
    assert "checksum" in core.fallback_reason, core.fallback_reason
    results = _score(core, request_body)
    assert all(s.out.scorer == "rules" and "checksum" in s.out.fallback_reason for s in results)


def test_a_pickle_is_refused_even_with_a_rewritten_local_checksum(trained, tmp_path, request_body):
    from leadscore.models.lgbm import folder_digest

    settings = _settings(tmp_path)
    assert _core(settings).model is not None
    folder = _model_folder(tmp_path / "cache")
    (folder / "model.lgb").write_bytes(pickle.dumps({"not": "a booster"}))
    # Someone with write access to the cache also rewrites the recorded checksum.
    (folder.parent.parent / CHECKSUM_FILE).write_text(json.dumps({"sha256": folder_digest(folder)}))
    from leadscore.models.lgbm import LeadModel, ModelLoadError

    with pytest.raises(ModelLoadError, match="expected a LightGBM text model"):
        LeadModel.load(folder)
    core = _core(settings)  # the registry's digest still catches it
    assert core.model is None and "checksum" in core.fallback_reason


def test_model_past_the_deadline_means_rules_for_that_request(trained, tmp_path, request_body, monkeypatch):
    from leadscore.serving import live

    core = _core(_settings(tmp_path, deadline_ms=100))
    assert core.model is not None
    real = live.score_model

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(live, "score_model", slow)
    started = time.monotonic()
    results = _score(core, request_body)
    assert time.monotonic() - started < 0.45  # answered at the deadline, not when the model finished
    assert all(s.out.scorer == "rules" and "100 ms deadline" in s.out.fallback_reason for s in results)
    monkeypatch.setattr(live, "score_model", real)
    assert all(s.out.scorer == "model" for s in _score(core, request_body))  # the next request is the model's again


def test_model_error_on_a_request_means_rules(trained, tmp_path, request_body, monkeypatch):
    from leadscore.serving import live

    core = _core(_settings(tmp_path))

    def broken(*args, **kwargs):
        raise FloatingPointError("boom")

    monkeypatch.setattr(live, "score_model", broken)
    results = _score(core, request_body)
    assert all(s.out.scorer == "rules" and "FloatingPointError" in s.out.fallback_reason for s in results)


def test_sqlite_ledger_down_still_serves_and_logs_the_loss(trained, tmp_path, request_body, serving_log):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the ledger's folder should be")
    core = _core(_settings(tmp_path).model_copy(update={"ledger_url": f"sqlite:///{blocker / 'ledger.db'}"}))
    results = _score(core, request_body)
    assert len(results) == 3 and all(s.out.score is not None for s in results)
    lost = [r for r in serving_log if r.getMessage() == "ledger unavailable"]
    assert lost and lost[0].scores_not_recorded == 3
    started = time.monotonic()
    _score(core, request_body)  # within the retry window: no second wait on the database
    assert time.monotonic() - started < 0.5
    assert [r for r in serving_log if r.getMessage() == "ledger unavailable"][-1].scores_not_recorded_total == 6


def test_postgres_ledger_records_and_its_outage_costs_no_score(trained, tmp_path, request_body, fresh_postgres_url,
                                                               serving_log):
    from leadscore.serving.core import ScoringCore

    core = ScoringCore(_settings(tmp_path).model_copy(update={"ledger_url": fresh_postgres_url}))
    assert core.ledger.backend == "postgresql"
    first = _score(core, request_body)
    second = _score(core, request_body)
    assert [s.out.previous_score for s in second] == [s.out.score for s in first]
    assert len(core.history(request_body.leads[0].lead.lead_id)) == 2
    # The database goes away (a closed port stands in for a stopped server).
    from sqlalchemy.engine import make_url

    dead = make_url(fresh_postgres_url).set(port=9).render_as_string(hide_password=False)
    core.ledger.close()
    from leadscore.serving.ledger import Ledger

    core.ledger = Ledger(dead, timeout_s=1.0)
    started = time.monotonic()
    third = _score(core, request_body)
    assert time.monotonic() - started < 5
    assert all(s.out.scorer == "model" and s.out.score is not None for s in third)
    lost = [r for r in serving_log if r.getMessage() == "ledger unavailable"]
    assert lost and lost[-1].scores_not_recorded == 3
    password = make_url(fresh_postgres_url).password
    assert not password or password not in json.dumps(lost[-1].__dict__, default=str)


def test_reload_picks_up_a_new_champion_and_keeps_the_model_if_it_cannot(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    core = _core(_settings(tmp_path))
    assert core.model is None and "lead-scoring@champion" in core.fallback_reason
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _TRACKING["uri"])  # the champion appears (promoted elsewhere)
    answer = core.reload()
    assert answer["changed"] and answer["scorer"] == "model"
    assert answer["model_version"] == trained["promotion"]["champion_after"]
    assert core.model is not None and core.fallback_reason is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")  # registry loses it
    kept = core.reload()
    assert not kept["changed"] and kept["model_version"] == answer["model_version"] and "champion" in kept["reason"]
    assert core.model is not None
    monkeypatch.undo()
    use_tracking()


def test_reload_keeps_the_model_when_the_new_one_fails_its_check(trained, tmp_path, monkeypatch):
    from leadscore.serving import core as core_module

    core = _core(_settings(tmp_path))
    assert core.model is not None
    kept_version = core.model.version
    monkeypatch.setattr(core_module, "_model_fails", lambda model: "model version 9 failed its start-up check: boom")
    answer = core.reload()
    assert not answer["changed"] and answer["model_version"] == kept_version and "boom" in answer["reason"]
    assert core.model is not None and core.model.version == kept_version and core.fallback_reason is None


def test_with_the_registry_down_what_the_crm_sends_for_the_model_is_answered_by_the_rules(
        trained, tmp_path, request_body, registry_down):
    """On main the rules answered a model failure only in theory: the service refused, 422, every
    profile attribute the rules do not read (here the demo's ``crm_system``, ``purchase_timeframe``,
    …), which is what a CRM sends for the model. Now they are accepted, and each answer names them."""
    from leadscore.serving.core import _not_read
    from leadscore.serving.service import _reject_unknown_fields

    core = _core(_settings(tmp_path))
    assert core.model is None
    extras = {k for item in request_body.leads for k in (item.lead.model_extra or {})}
    unread = extras - core.profile_reads - set(PERSONAL_COLUMNS)
    assert unread, "the demo leads carry attributes only the model reads"
    _reject_unknown_fields(core, request_body.leads, ("body", "leads"))  # no 422
    results = _score(core, request_body)
    assert all(s.out.scorer == "rules" for s in results)
    for item, s in zip(request_body.leads, results):
        mine = sorted(set(item.lead.model_extra or {}) & unread)
        assert [w.split(":")[0] for w in s.out.warnings if "not read by the SLA rules" in w] == mine
    lead = next(item.lead for item in request_body.leads if set(item.lead.model_extra or {}) & unread)
    de = _not_read(lead, core.profile_reads, "de")
    assert de and all("von den SLA-Regeln nicht gelesen" in w for w in de)
    assert not any(k in w for k in unread if "_" in k for w in de)  # German labels, not field keys


def test_while_the_model_serves_an_attribute_no_scorer_knows_is_still_a_422(trained, tmp_path, request_body):
    from fastapi.exceptions import RequestValidationError

    from leadscore.serving.service import _reject_unknown_fields

    core = _core(_settings(tmp_path))
    assert core.model is not None
    body = request_body.model_copy(deep=True)
    body.leads[0].lead.__pydantic_extra__["no_such_attribute"] = "x"
    with pytest.raises(RequestValidationError) as err:
        _reject_unknown_fields(core, body.leads, ("body", "leads"))
    assert "unknown field 'no_such_attribute'" in str(err.value.errors())
