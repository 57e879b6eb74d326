"""Issue 16: `leadscore train` from a folder without params.yaml used other defaults (31 leaves, no
free-mail list, no monotone constraints) and said nothing. The packaged params.yaml is the default, so
the same export gives the same model to the last bit whether ./params.yaml is there or not."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.config.params import load_params
from leadscore.models.lgbm import LeadModel
from leadscore.training.dataset import build_dataset, load_dataset
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    from leadscore.demo import write_demo_export

    folder = tmp_path_factory.mktemp("params-source") / "export"
    write_demo_export(folder, n_leads=1500, seed=5)
    return folder


def _train_in(folder, export, monkeypatch) -> tuple[LeadModel, str]:
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(app, ["train", "--data", str(export), "--model-dir", "model",
                                      "--no-evaluate", "--no-register"])
    assert result.exit_code == 0, result.output
    return LeadModel.load(folder / "model"), " ".join(result.output.split())


def test_the_same_model_with_or_without_params_yaml(small_export, tmp_path, monkeypatch):
    monkeypatch.delenv("LEADSCORE_PARAMS_PATH", raising=False)
    bare, with_file = tmp_path / "bare", tmp_path / "with-file"
    bare.mkdir()
    with_file.mkdir()
    shutil.copy(ROOT / "params.yaml", with_file / "params.yaml")  # the repository's file, as a user copies it
    a, said_a = _train_in(bare, small_export, monkeypatch)
    b, said_b = _train_in(with_file, small_export, monkeypatch)

    assert "parameters: the packaged defaults" in said_a
    assert "parameters: params.yaml (from ./params.yaml)" in said_b
    assert a.info["params"]["params_sha256"] == b.info["params"]["params_sha256"]
    assert a.info["params"]["params_chosen_by"] == "packaged defaults"
    assert b.info["params"]["params_chosen_by"] == "./params.yaml"
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.calibrator == b.calibrator and a.grades == b.grades

    params = load_params(ROOT / "params.yaml")
    build_dataset(small_export, params, tmp_path / "dataset")
    table, spec = load_dataset(tmp_path / "dataset")
    test = table[table["split"] == "test"]
    y = test["label"].to_numpy()
    auc_a = roc_auc_score(y, a.predict_proba(test[spec.names]))
    auc_b = roc_auc_score(y, b.predict_proba(test[spec.names]))
    assert np.isfinite(auc_a) and auc_a > 0.6
    assert abs(auc_a - auc_b) < 1e-9
