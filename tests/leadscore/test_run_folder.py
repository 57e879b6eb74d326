"""`retrain --data` / `train --data` write a run folder of their own, never the DVC pipeline's outputs.

Measured on main: both wrote artifacts/dataset, artifacts/model, metrics/evaluate.json, plots/ and
artifacts/model_card.md, which dvc.yaml tracks, so the next `make serve` (`dvc repro`) retrained the
demo over the user's model. The chain's steps are replaced by recorders here (where they write is the
point); one real `train --data` on a small demo export checks the folder end to end.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from leadscore import cli
from leadscore.cli import app
from leadscore.runs import DVC_STAGE_ENV, dvc_outputs, new_run_folder, run_name, tracked_collisions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A working directory with the repository's dvc.yaml and params.yaml, as a user's clone."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DVC_STAGE_ENV, raising=False)
    return tmp_path


@pytest.fixture()
def recorded(monkeypatch) -> dict:
    """Replace the chain's steps by recorders of the paths they are given (each writes a file there)."""
    seen: dict[str, Path] = {}

    def touch(path: Path, name: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("x")

    def build_dataset(export, params, out_dir, allow_leaky=False):
        seen["dataset"] = Path(out_dir)
        touch(Path(out_dir), "snapshots.parquet")
        return {"notes": []}  # the summary build_dataset returns; the chain prints its notes

    def train_model(dataset, params, model_dir, progress=None):
        seen["model"] = Path(model_dir)
        touch(Path(model_dir), "model.txt")
        return SimpleNamespace(info={"trees": 1, "train_rows": 1, "thresholds": {"chosen_by": "test"}}, sales_ready=0.5)

    def evaluate(dataset, model_dir, export, params, metrics_file, plots_dir, progress=None):
        seen["metrics"], seen["plots"] = Path(metrics_file), Path(plots_dir)
        Path(metrics_file).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics_file).write_text("{}")
        touch(Path(plots_dir), "roc.csv")
        return {}

    def register_model(model_dir, dataset, metrics, params, card_file=None, plots_dir=None):
        seen["card"] = Path(card_file)
        Path(card_file).write_text("card")
        return {}

    monkeypatch.setattr("leadscore.training.dataset.build_dataset", build_dataset)
    monkeypatch.setattr("leadscore.training.train.train_model", train_model)
    monkeypatch.setattr("leadscore.training.evaluate.evaluate", evaluate)
    monkeypatch.setattr("leadscore.training.register.register_model", register_model)
    monkeypatch.setattr("leadscore.training.promote.promote", lambda dataset, params, export=None: {})
    monkeypatch.setattr(cli, "_read", lambda data: SimpleNamespace())
    return seen


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, " ".join(result.output.split())


def test_dvc_outputs_are_read_from_dvc_yaml_and_cover_the_cli_defaults():
    """The paths the chain used to write are exactly ones dvc.yaml tracks (hence the guard)."""
    outputs = dvc_outputs(ROOT)
    for default in (cli.DEFAULT_DATASET, cli.DEFAULT_MODEL, cli.DEFAULT_CARD, cli.DEFAULT_METRICS):
        assert (ROOT / default).resolve() in outputs, default
    assert any((ROOT / cli.DEFAULT_PLOTS).resolve() in p.parents for p in outputs)
    assert outputs[(ROOT / cli.DEFAULT_MODEL).resolve()] == "stage 'train' (outs)"


@pytest.mark.parametrize("command", [["retrain"], ["train"]])
def test_chain_from_an_export_writes_its_own_run_folder(project, recorded, command):
    result, output = _run(*command, "--data", "exports/acme_q3")

    assert result.exit_code == 0, output
    (folder,) = (project / "runs").iterdir()
    assert folder.name.endswith("-acme_q3")
    assert set(recorded) == {"dataset", "model", "metrics", "plots", "card"}
    for what, path in recorded.items():
        assert (project / path).resolve().parent == folder.resolve(), (what, path)
    assert not tracked_collisions(recorded, project)
    assert not any((project / d).exists() for d in ("artifacts", "metrics", "plots"))
    assert f"run folder runs/{folder.name}/" in output
    assert sorted(p.name for p in folder.iterdir()) == ["dataset", "evaluate.json", "model", "model_card.md", "plots"]


@pytest.mark.parametrize("args, named", [
    (["retrain", "--model-dir", "artifacts/model"], "artifacts/model"),
    (["retrain", "--dataset", "artifacts/dataset/q3"], "artifacts/dataset"),
    (["retrain", "--run-dir", "."], "plots"),
    (["train", "--run-dir", "artifacts"], "artifacts/model_card.md"),
    (["train", "--model-dir", "artifacts/model"], "artifacts/model"),
])
def test_a_tracked_output_is_refused_before_any_work(project, recorded, args, named):
    result, output = _run(*args, "--data", "exports/acme_q3")

    assert result.exit_code == 2, output
    assert "refusing to write over the DVC pipeline's outputs" in output
    assert named in output and "dvc.yaml" in output and "Traceback" not in output
    assert not recorded and not (project / "runs").exists()


def test_dvc_itself_may_run_the_chain_on_its_outputs(project, recorded, monkeypatch):
    monkeypatch.setenv(DVC_STAGE_ENV, "retrain")  # what `dvc repro` sets for each stage's command
    result, output = _run("retrain", "--data", "exports/acme_q3", "--dataset", "artifacts/dataset",
                          "--model-dir", "artifacts/model")

    assert result.exit_code == 0, output
    assert recorded["dataset"] == Path("artifacts/dataset") and recorded["model"] == Path("artifacts/model")


def test_explicit_paths_outside_the_pipeline_are_used(project, recorded):
    result, output = _run("retrain", "--data", "exports/acme_q3", "--model-dir", "models_by_hand/q3",
                          "--run-dir", "runs/q3")

    assert result.exit_code == 0, output
    assert recorded["model"] == Path("models_by_hand/q3")
    assert recorded["dataset"] == Path("runs/q3/dataset") and recorded["card"] == Path("runs/q3/model_card.md")


def test_the_dvc_train_stage_still_writes_its_output(project, recorded):
    """`leadscore train --dataset ... --model-dir artifacts/model --no-evaluate --no-register` is the
    single-step command dvc.yaml runs: no export, no run folder, no guard."""
    result, output = _run("train", "--dataset", "artifacts/dataset", "--no-evaluate", "--no-register")

    assert result.exit_code == 0, output
    assert recorded == {"model": cli.DEFAULT_MODEL}
    assert not (project / "runs").exists()


def test_a_run_is_named_after_its_export():
    assert run_name("sqlite:///crm/hubspot.db") == "hubspot" and run_name("exports/acme q3/") == "acme-q3"
    assert run_name("postgresql://u@h/db?x=1") == "db"


def test_two_runs_in_one_second_get_two_folders(tmp_path):
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    first = new_run_folder("export", now, tmp_path)
    assert first.name == "20250102T030405Z-export"
    first.mkdir()
    assert new_run_folder("export", now, tmp_path).name == "20250102T030405Z-export-2"


def test_flat_results_lie_outside_what_dvc_tracks():
    """`retrain --spec` writes artifacts/flat/<spec name>: the folder neither holds nor lies in a DVC
    output (so no spec name can reach one), and the shipped flat specs' folders are clear too."""
    import yaml

    from leadscore.features.flat import read_flat_spec

    assert not tracked_collisions({"flat results": ROOT / cli.FLAT_DIR}, ROOT)
    flat_specs = [s for s in sorted((ROOT / "specs").glob("*.yaml")) if "label" in yaml.safe_load(s.read_text())]
    assert flat_specs
    for spec in flat_specs:
        out_dir = ROOT / cli.FLAT_DIR / read_flat_spec(spec).name
        assert not tracked_collisions({"flat results": out_dir}, ROOT), spec.name


def test_train_from_a_small_demo_export_fills_the_run_folder(tracking, demo_dir, project):
    """End to end, no stubs: features and model land in the run folder, nothing the pipeline tracks."""
    result, output = _run("train", "--data", str(demo_dir), "--no-evaluate")

    assert result.exit_code == 0, output
    (folder,) = (project / "runs").iterdir()
    assert (folder / "dataset" / "summary.json").is_file() and any((folder / "model").iterdir())
    assert not any((project / d).exists() for d in ("artifacts", "metrics", "plots"))
    assert f"run folder runs/{folder.name}/" in output
