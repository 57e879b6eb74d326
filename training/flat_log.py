"""One MLflow run per flat-export evaluation (``leadscore retrain --spec``): settings, metrics of
every scorer, the plots, the audit, the columns left out (with their reasons) and the notes. Flat
models are not registered: the service scores leads from their activity log, which a flat export
does not have."""

from __future__ import annotations

from pathlib import Path

from leadscore.config.params import Params
from leadscore.config.settings import Settings
from leadscore.features.flat import read_flat_spec
from leadscore.models.registry import use_tracking
from leadscore.training.register import _flatten, _git_commit, log_params_file

EXPERIMENT = "leadscore-flat"


def columns_left_out(result: dict) -> dict[str, str]:
    """Every column of the export that no scorer saw, with its reason: the spec's ``drop`` list
    (each with its ``why``) and the features left out on request (``exclude``)."""
    out = {d.column: d.why for d in read_flat_spec(result["spec"]).drop}
    for col in (result.get("settings") or {}).get("exclude", []):
        out[col] = "left out of every scorer on request (exclude)"
    return out


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
        if "gate" in result:
            mlflow.set_tag("baseline_gate", "passed" if result["gate"]["passed"] else "failed")
            mlflow.log_dict(result["gate"], "baseline_gate.json")
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
        left_out = columns_left_out(result)
        mlflow.log_dict(left_out, "columns_left_out.json")
        mlflow.set_tag("columns_left_out", str(len(left_out)))
        mlflow.log_text("\n".join(f"- {n}" for n in result["notes"]) + "\n", "notes.md")
        mlflow.log_artifacts(str(out_dir), "evaluation")
        return run.info.run_id
