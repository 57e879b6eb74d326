"""Workflow verb ``evaluate``: the model and the SLA rules on the same later-in-time test rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

from features.build import compute_features
from features.contract import Export, read_export
from leadscore.params import Params
from models.calibration import expected_calibration_error, reliability_table
from models.lgbm import LeadModel
from models.rules import RuleScorer, load_rules
from training.dataset import load_dataset


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "mean_predicted": float(np.mean(p)),
    }


def evaluate(
    dataset_dir: Path | str,
    model_dir: Path | str,
    export: Export | Path | str,
    params: Params,
    rules_path: Path | str | None = None,
    metrics_file: Path | str | None = None,
    roc_file: Path | str | None = None,
    reliability_file: Path | str | None = None,
) -> dict:
    """Metrics of model and rules on the test period; optionally written for DVC (metrics, ROC
    points, reliability table) with a reliability plot (PNG beside the table)."""
    table, _ = load_dataset(dataset_dir)
    test = table[table["split"] == "test"].reset_index(drop=True)
    y = test["label"].to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError(f"the test period has {int(y.sum())} won of {len(y)} snapshots; cannot measure ranking")
    model = LeadModel.load(model_dir)
    p_model = model.predict_proba(test[model.spec.names])
    export = export if isinstance(export, Export) else read_export(export)
    rules = RuleScorer(load_rules(rules_path), params.features)
    rule_raw = compute_features(test[["lead_id", "as_of"]], export.leads, export.activities, rules.spec)
    p_rules = rules.probability(rules.points(rule_raw)[0])
    result = {
        "test_rows": len(test),
        "test_positives": int(y.sum()),
        "test_base_rate": float(y.mean()),
        "model": _metrics(y, p_model),
        "rules": _metrics(y, p_rules),
    }
    result["auc_gain_over_rules"] = result["model"]["roc_auc"] - result["rules"]["roc_auc"]
    if metrics_file:
        Path(metrics_file).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics_file).write_text(json.dumps(result, indent=1))
    if roc_file:
        rows = []
        for name, p in (("model", p_model), ("rules", p_rules)):
            fpr, tpr, _ = roc_curve(y, p)
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
            rows += [{"scorer": name, "fpr": float(fpr[i]), "tpr": float(tpr[i])} for i in keep]
        Path(roc_file).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(roc_file, index=False)
    if reliability_file:
        table = pd.DataFrame([
            {"scorer": name, **row} for name, p in (("model", p_model), ("rules", p_rules)) for row in reliability_table(y, p)
        ])
        Path(reliability_file).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(reliability_file, index=False)
        reliability_plot(table, result, Path(reliability_file).with_suffix(".png"))
    return result


def reliability_plot(table: pd.DataFrame, result: dict, path: Path) -> Path:
    """Mean predicted probability against the observed win rate per bin, for model and rules."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = max(table["mean_predicted"].max(), table["observed_rate"].max()) * 1.05
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for name, style in (("model", "o-"), ("rules", "s-")):
        part = table[table["scorer"] == name]
        ax.plot(part["mean_predicted"], part["observed_rate"], style, label=f"{name} (ECE {result[name]['ece']:.4f})")
    ax.set_xlabel("mean predicted probability (equal-count bins)")
    ax.set_ylabel("observed win rate")
    ax.set_title(f"Reliability on the test period ({result['test_rows']:,} snapshots, {result['test_positives']:,} won)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
