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
