"""Workflow verb ``evaluate``: the model, the SLA rules and a logistic regression on the same
later-in-time rows — the test period and a rolling-origin backtest — with plots.

The test period is the backtest's last window, scored by the trained model itself; the earlier
windows retrain it as of their cut-off (``training.backtest``). ``metrics/evaluate.json`` holds
the test period at the top level (what the registry and the model card quote), ``backtest`` the
windows and their pooled numbers, ``verdicts`` one sentence per baseline, ``thresholds`` the
capacity table of the model on the test period (expected against observed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.config.params import Params
from leadscore.features.build import encode_matrix
from leadscore.features.contract import Export, read_export
from leadscore.models.lgbm import LeadModel
from leadscore.training.backtest import SCORERS, run_backtest
from leadscore.training.dataset import SUMMARY_FILE, load_dataset
from leadscore.training.gate import baseline_gate
from leadscore.training.metrics import verdict, week_codes
from leadscore.training.plots import shap_importance, write_backtest_plot, write_plots
from leadscore.training.thresholds import threshold_table

BASELINES = ("rules", "logistic")
LABELS = {"model": "LightGBM", "rules": "SLA rules", "logistic": "logistic regression"}


def evaluate(
    dataset_dir: Path | str,
    model_dir: Path | str,
    export: Export | Path | str,
    params: Params,
    rules_path: Path | str | None = None,
    metrics_file: Path | str | None = None,
    plots_dir: Path | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Measure the trained model against both baselines; optionally write metrics and plots."""
    table, spec = load_dataset(dataset_dir)
    summary = json.loads((Path(dataset_dir) / SUMMARY_FILE).read_text())
    test_start = pd.Timestamp(summary["test_start"])
    test = table[table["split"] == "test"]
    if test["label"].nunique() < 2:
        raise ValueError(f"the test period has {int(test['label'].sum())} won of {len(test)} snapshots; cannot measure ranking")
    model = LeadModel.load(model_dir)
    export = export if isinstance(export, Export) else read_export(export)
    report, rows = run_backtest(table, spec, export, params, test_start, rules_path=rules_path, final_model=model,
                                progress=progress)
    last = report["folds"][-1]
    if "skipped" in last:
        raise ValueError(f"the test period could not be scored: {last['skipped']}")
    scored = rows[rows["fold"] == last["fold"]]
    y = scored["label"].to_numpy()
    result = {
        "test_rows": last["rows"],
        "test_positives": last["positives"],
        "test_base_rate": float(y.mean()),
        **{name: last["scorers"][name] for name in SCORERS},
        "difference": last["difference"],
        "auc_gain_over_rules": last["difference"]["rules"]["roc_auc"]["value"],
        "auc_gain_over_logistic": last["difference"]["logistic"]["roc_auc"]["value"],
        "verdicts": {
            "test": [verdict(last["difference"][b], "the model", LABELS[b]) for b in BASELINES],
            "backtest": [verdict(report["overall"]["difference"][b], "the model", LABELS[b]) for b in BASELINES],
        },
        "thresholds": threshold_table(scored["model"].to_numpy(), week_codes(scored["as_of"]), y,
                                      capacity=params.thresholds.capacity_per_week).round(6).to_dict(orient="records"),
        "sales_ready": model.sales_ready,
        "backtest": report,
        # May it serve at all? Beats the rules, not worse than logistic regression (training.gate).
        "gate": baseline_gate(report, params.registry, LABELS["model"]),
    }
    if metrics_file:
        Path(metrics_file).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics_file).write_text(json.dumps(result, indent=1))
    if plots_dir:
        if progress:
            progress("plots")
        # The last window is the test period, row for row.
        assert len(test) == len(scored) and (test["lead_id"].to_numpy() == scored["lead_id"].to_numpy()).all()
        X = encode_matrix(test[spec.names], spec)
        importance = shap_importance(model.contributions(X)[:, :-1], spec.names, {f.name: f.group for f in spec.features})
        title = f"test period from {test_start.date()}: {len(y):,} snapshots, {int(y.sum()):,} won"
        write_plots(plots_dir, y, {name: scored[name].to_numpy() for name in SCORERS},
                    grades={"model": scored["model_grade"].to_numpy(), "rules": scored["rules_grade"].to_numpy()},
                    importance=importance, title=title)
        write_backtest_plot(plots_dir, report)
        pd.DataFrame(result["thresholds"]).to_csv(Path(plots_dir) / "thresholds.csv", index=False)
    return result


def metric_rows(metrics: dict, keys=("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_k_win_rate")) -> list[tuple]:
    """(metric, {scorer: "value [low, high]"}) for printing; scorers missing from old files are skipped."""
    out = []
    for key in keys:
        cells = {}
        for name in SCORERS:
            if name not in metrics:
                continue
            m = metrics[name]
            iv = (m.get("interval") or {}).get(key)
            cells[name] = f"{m[key]:.3f}" + (f" [{iv[0]:.3f}–{iv[1]:.3f}]" if iv and np.all(np.isfinite(iv)) else "")
        out.append((key, cells))
    return out
