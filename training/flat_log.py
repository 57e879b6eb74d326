"""One MLflow run per flat-export evaluation (``leadscore retrain --spec``): settings, metrics of
every scorer, the plots, the audit and the notes. Flat models are not registered: the service
scores leads from their activity log, which a flat export does not have."""

from __future__ import annotations

from pathlib import Path

from leadscore.config.params import Params
from leadscore.config.settings import Settings
from leadscore.features.flat import read_flat_spec
from leadscore.models.registry import use_tracking
from leadscore.training.register import _flatten, _git_commit, log_params_file

EXPERIMENT = "leadscore-flat"


def log_flat_run(result: dict, out_dir: Path | str, params: Params, audit: dict | None = None,
                 settings: Settings | None = None) -> str:
    """Log ``evaluate_flat``'s result (and the files in ``out_dir``); returns the run id."""
    import mlflow

    use_tracking(settings)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=result["dataset"]) as run:
        mlflow.set_tags({"dataset": result["dataset"], "git_commit": _git_commit(),
                         "leakage_audit": "passed" if (audit or {}).get("passed", True) else "findings"})
        mlflow.log_params({k: str(v)[:500] for k, v in _flatten("", result["settings"], {}).items()})
        mlflow.log_params({f"train.lgbm.{k}": v for k, v in params.train.lgbm.items()})
        log_params_file(mlflow, params)
        metrics = {"rows": result["rows"], "positives": result["positives"]}
        time_ordered = (result["time_ordered"].get("metrics") or {}).get("scorers") or {}
        for scorer, m in time_ordered.items():
            metrics.update({f"time_{scorer}_{k}": float(v) for k, v in m.items() if isinstance(v, (int, float))})
        for scorer, cv in result["cv"]["roc_auc"].items():
            metrics[f"cv_{scorer}_roc_auc_mean"] = float(cv["mean"])
            metrics[f"cv_{scorer}_roc_auc_std"] = float(cv["std"])
        mlflow.log_metrics(metrics)
        if audit is not None:
            mlflow.log_dict(audit, "leakage_audit.json")
        mlflow.log_text("\n".join(f"- {n}" for n in result["notes"]) + "\n", "notes.md")
        mlflow.log_artifacts(str(out_dir), "evaluation")
        return run.info.run_id
