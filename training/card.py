"""The model card: what a registered model is, what it learned from, how it was checked, and its limits.

Written at registration (``artifacts/model_card.md`` and the MLflow run's ``model_card.md``) from
the files the pipeline already wrote; every number in it comes from those files.
"""

from __future__ import annotations

from models.lgbm import LeadModel

PERIODS = {"train": "train", "valid": "validation", "test": "test", "purged": "gaps between periods (left out)"}
METRICS = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("log_loss", "log loss"), ("brier", "Brier"),
           ("ece", "ECE (10 equal-count bins)"))


def model_card(
    *,
    model: LeadModel,
    summary: dict,
    audit: dict | None,
    metrics: dict,
    registered: dict,
) -> str:
    """Markdown for one registered version. ``registered``: model_name, version, run_id, git_commit."""
    groups = {"fit": 0, "interest": 0}
    for f in model.spec.features:
        groups[f.group] += 1
    lines = [
        f"# Model card: {registered['model_name']} version {registered['version']}",
        "",
        f"MLflow run `{registered['run_id']}`, code at git commit `{registered.get('git_commit', 'unknown')}`.",
        "",
        "## What it does",
        "Estimates the probability that a lead's first opportunity, created within the label horizon of the "
        "moment of scoring, is won. It recommends; people decide. A low score never disqualifies a lead "
        "on its own.",
        "",
        "## Data",
        f"- Export from {summary['data_start'][:10]} to {summary['data_end'][:10]}: "
        f"{summary['leads']:,} leads with labelled snapshots, {summary['snapshots']:,} snapshots, "
        f"{summary['positives']:,} positive.",
        f"- Censored (left out, never negatives): {summary['censored_horizon']:,} snapshots whose horizon is "
        f"not over, {summary['censored_open_deal']:,} whose deal is still open.",
        "- Rows by period: " + ", ".join(
            f"{PERIODS.get(k, k)} {v:,} ({summary['positives_by_split'].get(k, 0):,} positive)"
            for k, v in sorted(summary["rows_by_split"].items(), key=lambda kv: list(PERIODS).index(kv[0]) if kv[0] in PERIODS else 9)
        ) + f"; the test period starts {summary['test_start'][:10]}.",
        "- Rows dropped when reading the export: " + ", ".join(f"{k} {v:,}" for k, v in summary["dropped_rows"].items()) + ".",
        "",
        "## Features",
        f"{len(model.spec.features)} features: {groups['fit']} fit (who the lead is), {groups['interest']} interest "
        "(what the lead did before the moment of scoring). Activity types that sales logs "
        f"({', '.join(model.spec.sales_activity_types)}) and personal data (e-mail address, names) are never features; "
        "the e-mail is used for its domain only.",
        "",
        "## Leakage audit",
    ]
    lines += _audit_lines(audit, summary)
    lines += ["", "## Evaluation on the test period", ""]
    lines += _metric_table(metrics)
    lines += [
        "",
        "## Limits",
        "- Profile attributes are the export's current values, taken as known at every moment of scoring.",
        "- The probability is calibrated on a period after the one the booster learned from; calibration drifts "
        "with the market, so check the ECE on recent data every quarter.",
        "- The test period is one stretch of time; a rolling backtest over several cut-offs is the stronger evidence.",
    ]
    return "\n".join(lines) + "\n"


def _audit_lines(audit: dict | None, summary: dict) -> list[str]:
    if audit is None:
        return ["No audit file was found for this training set."]
    top = sorted(audit["single_feature_auc"].items(), key=lambda kv: -kv[1])[:5]
    thresholds = ", ".join(f"{k} {v}" for k, v in audit.get("thresholds", {}).items())
    lines = [
        f"Result: **{summary.get('leakage_audit', 'passed' if audit['passed'] else 'findings')}** "
        f"({audit['checked']} features checked; thresholds: {thresholds}).",
    ]
    if audit["findings"]:
        lines.append("Findings, kept with --allow-leaky:" if audit.get("allowed_leaky") else "Findings:")
        lines += [f"- `{f['column']}` [{f['check']}]: {f['evidence']}" for f in audit["findings"]]
    lines.append("Strongest single features (AUC alone): " + ", ".join(f"`{k}` {v:.3f}" for k, v in top) + ".")
    return lines


def _metric_table(metrics: dict) -> list[str]:
    rows = [
        f"{metrics['test_rows']:,} snapshots, {metrics['test_positives']:,} positive; both scorers on exactly these rows.",
        "",
        "| metric | model | SLA rules |",
        "|---|---|---|",
    ]
    rows += [f"| {label} | {metrics['model'][key]:.4f} | {metrics['rules'][key]:.4f} |" for key, label in METRICS]
    return rows
