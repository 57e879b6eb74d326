"""The packaged params.yaml is the one source of defaults; which file counts, and how a team's file merges."""

from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel

from leadscore.config import params as P
from leadscore.config.params import Params, ParamsError, default_params, load_params
from tests.conftest import ROOT


def _sections(model: type[BaseModel]):
    yield model
    for f in model.model_fields.values():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            yield from _sections(f.annotation)


def test_no_parameter_has_a_default_in_code():
    """A second copy of a default in code could drift from params.yaml; every field must come from the file."""
    with_default = [f"{m.__name__}.{name}" for m in _sections(Params) for name, f in m.model_fields.items()
                    if not f.is_required()]
    assert not with_default, with_default


def test_the_packaged_file_is_the_default_everywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./params.yaml here
    assert P.params_path() == P.PACKAGED
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert load_params().model_dump(mode="json") == Params.model_validate(shipped).model_dump(mode="json")
    assert load_params().train.monotone_increasing == shipped["train"]["monotone_increasing"]
    assert default_params() == load_params()


def test_a_local_file_names_only_what_it_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  lgbm: {num_leaves: 9}\nthresholds: {capacity_per_week: 12}\n")
    p = load_params()
    base = default_params()
    assert p.thresholds.capacity_per_week == 12 and base.thresholds.capacity_per_week != 12
    assert p.train.lgbm["num_leaves"] == 9
    assert p.train.lgbm["learning_rate"] == base.train.lgbm["learning_rate"]  # the rest of the mapping stays
    assert p.features == base.features


def test_a_named_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml: parameters file not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, expected", [
    ("train: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping of sections"),
    ("train: {num_boost_round: 0}\n", "train.num_boost_round"),
    ("features: {colour: blue}\n", "features.colour"),
])
def test_a_bad_file_names_itself_and_the_key(tmp_path, text, expected):
    f = tmp_path / "team.yaml"
    f.write_text(text)
    with pytest.raises(ParamsError, match=expected) as err:
        load_params(f)
    assert str(f) in str(err.value)


def test_the_cli_reads_the_environment_before_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train: {num_boost_round: 0}\n")  # invalid: would fail if read
    good = tmp_path / "env.yaml"
    good.write_text("thresholds: {capacity_per_week: 7}\n")
    monkeypatch.setenv("LEADSCORE_PARAMS_PATH", str(good))
    from leadscore.cli import _params

    assert _params(None).thresholds.capacity_per_week == 7
    monkeypatch.delenv("LEADSCORE_PARAMS_PATH")
    with pytest.raises(ParamsError, match="num_boost_round"):
        _params(None)


def test_every_command_says_which_parameters_it_read(tmp_path, monkeypatch):
    """Issue 16: a run from a folder without params.yaml used other defaults and said nothing, and the
    CLI ignored LEADSCORE_PARAMS_PATH. Now the file, why it was chosen and its hash are printed."""
    from typer.testing import CliRunner

    from leadscore.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSCORE_PARAMS_PATH", raising=False)
    run = CliRunner()

    def said(*args: str) -> str:
        return " ".join(run.invoke(app, list(args)).output.split())

    digest = P.load_params(P.PACKAGED).source.sha256[:12]
    missing = ["sla", "--data", str(tmp_path / "nowhere")]  # reads params first, then fails on the export
    assert f"parameters: the packaged defaults (no --params, LEADSCORE_PARAMS_PATH or ./params.yaml); sha256 {digest}" in said(*missing)
    (tmp_path / "params.yaml").write_text("thresholds: {capacity_per_week: 12}\n")
    local = P.load_params()
    assert local.source.chosen_by == "./params.yaml" and local.thresholds.capacity_per_week == 12
    assert f"parameters: params.yaml (from ./params.yaml); sha256 {local.source.sha256[:12]}" in said(*missing)
    team = tmp_path / "team.yaml"
    team.write_text("thresholds: {capacity_per_week: 9}\n")
    monkeypatch.setenv("LEADSCORE_PARAMS_PATH", str(team))
    assert f"parameters: {team} (from LEADSCORE_PARAMS_PATH)" in said(*missing)
    other = tmp_path / "other.yaml"
    other.write_text("thresholds: {capacity_per_week: 7}\n")
    assert f"parameters: {other} (from --params)" in said(*missing, "--params", str(other))


def test_the_record_names_the_file_and_hashes_what_counts(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.chdir(tmp_path)
    packaged = P.load_params(P.PACKAGED, chosen_by="packaged defaults").record()
    assert packaged["params_file"] == "leadscore/config/params.yaml (packaged)"
    assert packaged["params_file_sha256"] == hashlib.sha256(P.PACKAGED.read_bytes()).hexdigest()
    (tmp_path / "params.yaml").write_text("# the same values, said again\ntrain: {seed: 7}\n")
    same = P.load_params().record()
    assert same["params_file"] == "params.yaml" and str(tmp_path) not in json_dump(same)  # no machine paths
    assert same["params_file_sha256"] != packaged["params_file_sha256"]
    assert same["params_sha256"] == packaged["params_sha256"]  # … yet the effective parameters are identical
    (tmp_path / "params.yaml").write_text("train: {seed: 8}\n")
    assert P.load_params().record()["params_sha256"] != packaged["params_sha256"]


def json_dump(value) -> str:
    import json

    return json.dumps(value)
