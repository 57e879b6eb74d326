"""Workflow verb ``register``: one MLflow run per trained model, a registry version, the alias."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from leadscore.config.params import Params
from leadscore.config.settings import Settings, get_settings
from leadscore.models.lgbm import LeadModel, folder_digest
from leadscore.models.registry import ARTIFACT, DIGEST_TAG, use_tracking
from leadscore.training import gate

EXPERIMENT = "leadscore"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flatten(prefix: str, value: object, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def log_params_file(mlflow, params: Params) -> None:
    """The parameters file itself and the effective parameters, as artifacts of the active run."""
    mlflow.set_tags(params.record())
    if params.source is not None:
        mlflow.log_text(params.source.path.read_text(encoding="utf-8"), "params/" + params.source.path.name)
    mlflow.log_dict(params.model_dump(mode="json"), "params/effective.json")


def data_fingerprint(dataset_dir: Path | str) -> str:
    digest = hashlib.sha256()
    for name in ("snapshots.parquet", "spec.json"):
        digest.update((Path(dataset_dir) / name).read_bytes())
    return digest.hexdigest()[:16]


class TooLittleDataError(ValueError):
    """Too few won deals to trust a model: the SLA rules stay the scorer."""


def check_enough_wins(model: LeadModel, params: Params) -> None:
    """Refuse a model learned from fewer than ``registry.min_won_deals`` won deals, naming the counts."""
    won, leads = model.info.get("won_deals"), model.info.get("leads")
    needed = params.registry.min_won_deals
    if won is not None and won < needed:
        raise TooLittleDataError(
            f"the model learned from {won} won deals ({leads:,} leads, {model.info.get('train_rows', 0):,} snapshots); "
            f"at least {needed} are needed to register one (registry.min_won_deals). Keep the SLA rules as the scorer "
            "(they answer whenever no model is registered) and retrain when more deals have closed."
        )


def register_model(
    model_dir: Path | str,
    dataset_dir: Path | str,
    metrics: dict,
    params: Params,
    settings: Settings | None = None,
    card_file: Path | str | None = None,
    plots_dir: Path | str | None = None,
) -> dict:
    """Log params, metrics, plots and the model to MLflow, register a version as ``challenger``.

    The model card (``model_card.md`` in the run, and ``card_file`` if given) states the data,
    the leakage audit, the test-period and backtest metrics beside both baselines, and the
    thresholds. Serving follows ``champion``, which only ``leadscore promote`` moves.
    """
    import mlflow

    from leadscore.training.card import model_card

    settings = settings or get_settings()
    model = LeadModel.load(model_dir)
    check_enough_wins(model, params)
    uri = use_tracking(settings)
    # May this version serve at all? Recorded on the run and the version; `promote` reads it, for the first champion too.
    verdict = (metrics or {}).get("gate")
    if verdict is None and (metrics or {}).get("backtest"):
        verdict = gate.baseline_gate(metrics["backtest"], params.registry, "LightGBM")
    summary = json.loads((Path(dataset_dir) / "summary.json").read_text())
    table_example = None
    try:
        import pandas as pd

        table_example = pd.read_parquet(Path(dataset_dir) / "snapshots.parquet").head(3)[model.spec.names]
        table_example = table_example.astype({f.name: "object" for f in model.spec.features if f.kind == "category"})
    except Exception:  # the example is a courtesy for readers of the run, not a requirement
        table_example = None
    mlflow.set_experiment(EXPERIMENT)
    name = params.registry.model_name
    audit_file = Path(dataset_dir) / "audit.json"
    audit = json.loads(audit_file.read_text()) if audit_file.exists() else None
    commit = _git_commit()
    with mlflow.start_run() as run:
        mlflow.set_tags({
            "git_commit": commit,
            "data_fingerprint": data_fingerprint(dataset_dir),
            "data_end": summary["data_end"],
        })
        log_params_file(mlflow, params)
        trained_with = model.info.get("params") or {}
        if trained_with.get("params_sha256") not in (None, params.digest()):
            mlflow.set_tag("params_differ_from_training", trained_with.get("params_file", "unknown"))
        flat = _flatten("", params.model_dump(mode="json"), {})
        mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        mlflow.log_metrics({
            f"{scorer}_{k}": float(v) for scorer in ("model", "rules", "logistic") if scorer in metrics
            for k, v in metrics[scorer].items() if isinstance(v, (int, float))
        })
        mlflow.log_metrics({"test_rows": metrics["test_rows"], "test_positives": metrics["test_positives"]})
        backtest = metrics.get("backtest")
        if backtest:
            mlflow.log_dict(backtest, "backtest.json")
            mlflow.log_metrics({
                f"backtest_{scorer}_{k}": float(v) for scorer, m in backtest["overall"]["scorers"].items()
                for k, v in m.items() if isinstance(v, (int, float))
            })
        if verdict is not None:
            mlflow.log_dict(verdict, "baseline_gate.json")
            mlflow.set_tag(gate.TAG, "passed" if verdict["passed"] else "failed")
        if "thresholds" in model.info:
            mlflow.log_dict(model.info["thresholds"], "thresholds.json")
            mlflow.log_metrics({"sales_ready": model.sales_ready})
        if plots_dir is not None and Path(plots_dir).is_dir():
            mlflow.log_artifacts(str(plots_dir), "plots")
        mlflow.log_dict(summary, "dataset_summary.json")
        tuning = model.info.get("tuning")
        if tuning:
            mlflow.log_dict(tuning, "tuning.json")
            mlflow.log_params({f"tuned.{k}": v for k, v in tuning["best_params"].items()})
            mlflow.log_metrics({"tuning_trials": tuning["trials_run"], "tuning_best_valid_log_loss": tuning["best_valid_log_loss"]})
        mlflow.log_dict(model.calibrator or {}, "calibration.json")
        if audit is not None:
            mlflow.log_dict(audit, "leakage_audit.json")
            mlflow.set_tag("leakage_audit", summary.get("leakage_audit", "unknown"))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).resolve().parents[1] / "models" / "mlflow_pyfunc.py"),
            artifacts={ARTIFACT: str(model_dir)},
            signature=model.signature(),
            input_example=table_example,
            metadata={"leadscore": model.metadata()},
            registered_model_name=name,
        )
        run_id = run.info.run_id
        version = str(info.registered_model_version)
        card = model_card(model=model, summary=summary, audit=audit, metrics=metrics, registered={
            "model_name": name, "version": version, "run_id": run_id, "git_commit": commit,
        })
        mlflow.log_text(card, "model_card.md")
        if card_file is not None:
            Path(card_file).parent.mkdir(parents=True, exist_ok=True)
            Path(card_file).write_text(card)
    client = mlflow.MlflowClient()
    if verdict is not None:
        client.set_model_version_tag(name, version, gate.TAG, "passed" if verdict["passed"] else "failed")
        client.set_model_version_tag(name, version, gate.REASON_TAG, verdict["sentence"])
    # Serving verifies every download and cached copy against this before it trusts the files.
    client.set_model_version_tag(name, version, DIGEST_TAG, folder_digest(model_dir))
    client.set_registered_model_alias(name, params.registry.challenger_alias, version)
    return {"tracking_uri": uri, "run_id": run_id, "model_name": name, "version": version,
            "alias": params.registry.challenger_alias, "gate": verdict,
            "card": str(card_file) if card_file is not None else None}
