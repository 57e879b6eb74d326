"""Shared fixtures: one small demo export and one trained, registered model per test session.

MLflow points at a temporary SQLite store so tests never touch the user's ``mlflow.db``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadscore.config.params import load_params

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_LEADS = 2500
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: spinning OpenMP threads stall a busy 2-core machine
# The API's secrets, made up per test session (never a user's .env: the environment wins over it).
API_KEY = "test-key-" + os.urandom(8).hex()
os.environ["LEADSCORE_API_KEYS"] = f"rotated-out-{os.urandom(4).hex()},{API_KEY}"
os.environ["LEADSCORE_PSEUDONYM_KEY"] = os.urandom(16).hex()


@pytest.fixture(scope="session")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    from leadscore.demo import write_demo_export

    folder = tmp_path_factory.mktemp("demo") / "export"
    write_demo_export(folder, n_leads=DEMO_LEADS, seed=11)
    return folder


@pytest.fixture(scope="session")
def tracking(tmp_path_factory):
    """A private MLflow store for the whole session (environment restored afterwards)."""
    store = tmp_path_factory.mktemp("mlflow")
    keys = ("MLFLOW_TRACKING_URI", "LEADSCORE_CACHE_DIR", "LEADSCORE_PARAMS_PATH", "LEADSCORE_LEDGER_URL")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    os.environ["LEADSCORE_CACHE_DIR"] = str(store / "cache")
    os.environ["LEADSCORE_PARAMS_PATH"] = str(ROOT / "params.yaml")
    os.environ["LEADSCORE_LEDGER_URL"] = f"sqlite:///{store / 'ledger.db'}"
    old_cwd = os.getcwd()
    os.chdir(store)  # MLflow puts run artifacts beside the working directory
    yield store
    os.chdir(old_cwd)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def trained(demo_dir, params, tracking, tmp_path_factory):
    """features → train → evaluate → register → promote on the demo export, as `leadscore retrain` does."""
    from leadscore.training.dataset import build_dataset
    from leadscore.training.evaluate import evaluate
    from leadscore.training.promote import promote
    from leadscore.training.register import register_model
    from leadscore.training.train import train_model

    work = tmp_path_factory.mktemp("run")
    summary = build_dataset(demo_dir, params, work / "dataset")
    model = train_model(work / "dataset", params, work / "model")
    metrics = evaluate(work / "dataset", work / "model", demo_dir, params, metrics_file=work / "evaluate.json",
                       plots_dir=work / "plots")
    registered = register_model(work / "model", work / "dataset", metrics, params, card_file=work / "model_card.md",
                                plots_dir=work / "plots")
    promotion = promote(work / "dataset", params)
    return {"dir": work, "summary": summary, "model": model, "metrics": metrics, "registered": registered,
            "promotion": promotion, "dataset": work / "dataset", "model_dir": work / "model", "plots": work / "plots"}
