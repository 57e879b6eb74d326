"""The model card: what a registered model is, what it learned from, how it was checked, and its limits.

Written at registration (``artifacts/model_card.md`` and the MLflow run's ``model_card.md``) from
the files the pipeline already wrote; every number in it comes from those files.
"""

from __future__ import annotations

from leadscore.features.spec import SALES_PREFIX
from leadscore.models.lgbm import LeadModel

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
        f"({', '.join(model.spec.sales_activity_types)}, and any type named {SALES_PREFIX}…) and personal data (e-mail address, names) are never features; "
        "the e-mail is used for its domain only.",
        "",
    ]
    lines += _left_out_lines(model, summary)
    lines += [
        "",
        "## Leakage audit",
    ]
    lines += _audit_lines(audit, summary)
    lines += ["", "## Evaluation on the test period", ""]
    lines += _metric_table(metrics)
    lines += _backtest_lines(metrics)
    lines += _gate_lines(metrics)
    lines += _calibration_lines(model)
    lines += _threshold_lines(model, metrics)
    lines += _params_lines(model)
    lines += [
        "",
        "## Limits",
        "- Profile attributes are the export's current values, taken as known at every moment of scoring.",
        "- The probability is calibrated on a period after the one the booster learned from; calibration drifts "
        "with the market, so check the ECE on recent data every quarter.",
        "- Intervals come from resampling whole leads; they measure the noise of these rows, not how the market "
        "will change next quarter.",
    ]
    return "\n".join(lines) + "\n"


def _left_out_lines(model: LeadModel, summary: dict) -> list[str]:
    """The columns ``features.exclude`` kept from the model, with the reason given for each."""
    excluded = model.spec.excluded or summary.get("excluded_columns") or {}
    lines = ["## Columns left out", ""]
    if not excluded:
        return lines + ["None on request (params `features.exclude` is empty)."]
    lines.append(f"{len(excluded)} column(s) of the export never became features (params `features.exclude`, and personal data found by header or content):")
    return lines + [f"- `{col}`: {why}" for col, why in excluded.items()]


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


def _cell(m: dict, key: str) -> str:
    iv = (m.get("interval") or {}).get(key)
    return f"{m[key]:.4f}" + (f" ({iv[0]:.3f}–{iv[1]:.3f})" if iv else "")


def _metric_table(metrics: dict) -> list[str]:
    scorers = [s for s in ("model", "rules", "logistic") if s in metrics]
    names = {"model": "model", "rules": "SLA rules", "logistic": "logistic regression"}
    cap = (metrics.get("backtest") or {}).get("capacity_per_week")
    keys = list(METRICS) + ([("top_k_win_rate", f"win rate of the weekly top {cap}"),
                             ("top_k_share_of_wins", f"share of wins in the weekly top {cap}")] if cap else [])
    rows = [
        f"{metrics['test_rows']:,} snapshots, {metrics['test_positives']:,} positive; every scorer on exactly these rows "
        "(95 % bootstrap intervals over leads in brackets).",
        "",
        "| metric | " + " | ".join(names[s] for s in scorers) + " |",
        "|---|" + "---|" * len(scorers),
    ]
    rows += [f"| {label} | " + " | ".join(_cell(metrics[s], key) for s in scorers) + " |" for key, label in keys
             if all(key in metrics[s] for s in scorers)]
    for sentence in (metrics.get("verdicts") or {}).get("test", []):
        rows += ["", f"- {sentence[0].upper()}{sentence[1:]}."]
    return rows


def _backtest_lines(metrics: dict) -> list[str]:
    bt = metrics.get("backtest")
    if not bt:
        return []
    lines = ["", "## Rolling-origin backtest", "",
             "Retrained as of each cut-off on what was known then, scored on the following window "
             f"(capacity {bt['capacity_per_week']} leads a week for the top-k figures).", "",
             "| window from | snapshots | won | model AUC | SLA rules AUC | logistic AUC | model top-k win rate |",
             "|---|---|---|---|---|---|---|"]
    for f in bt["folds"]:
        if "skipped" in f:
            lines.append(f"| {f['start'][:10]} | skipped: {f['skipped']} | | | | | |")
            continue
        sc = f["scorers"]
        lines.append(f"| {f['start'][:10]} | {f['rows']:,} | {f['positives']:,} | {sc['model']['roc_auc']:.3f} | "
                     f"{sc['rules']['roc_auc']:.3f} | {sc['logistic']['roc_auc']:.3f} | {sc['model']['top_k_win_rate']:.3f} |")
    o = bt["overall"]["scorers"]
    lines.append(f"| all windows | {bt['overall']['rows']:,} | {bt['overall']['positives']:,} | {_cell(o['model'], 'roc_auc')} | "
                 f"{_cell(o['rules'], 'roc_auc')} | {_cell(o['logistic'], 'roc_auc')} | {o['model']['top_k_win_rate']:.3f} |")
    for sentence in (metrics.get("verdicts") or {}).get("backtest", []):
        lines += ["", f"- Over all windows: {sentence}."]
    return lines


def _gate_lines(metrics: dict) -> list[str]:
    """May it serve at all (``training.gate``): the sentence promote reads, the first champion's too."""
    verdict = metrics.get("gate")
    if not verdict:
        return ["", "## Baseline gate", "", "Not judged: registered without a backtest, so it is never promoted."]
    head = "Passed" if verdict["passed"] else "Failed: registered, never promoted; the SLA rules or the champion keep serving"
    return ["", "## Baseline gate", "", f"**{head}.** {verdict['sentence'][0].upper()}{verdict['sentence'][1:]}."]


def _calibration_lines(model: LeadModel) -> list[str]:
    cal = model.calibrator or {}
    if not cal:
        return []
    lines = ["", "## Calibration", "",
             f"Method **{cal.get('method', 'none')}**, fitted on {cal.get('rows', 0):,} calibration rows "
             f"({cal.get('positives', 0):,} won), chosen on the later part of them."]
    lines += [f"- {sentence}" for sentence in cal.get("choice") or []]
    spread = cal.get("spread")
    if spread and spread.get("rows"):
        lines.append(f"- Spread on the calibration rows: {spread['distinct']:,} distinct probabilities on "
                     f"{spread['rows']:,} rows; {spread['top_share']:.1%} share the most common value, "
                     f"{spread['floor_share']:.1%} the lowest.")
    return lines


def _params_lines(model: LeadModel) -> list[str]:
    rec = model.info.get("params")
    if not rec:
        return []
    return ["", "## Parameters", "",
            f"Trained with `{rec.get('params_file', 'unknown')}` (chosen by {rec.get('params_chosen_by', 'unknown')}; "
            f"file sha256 `{rec.get('params_file_sha256', '?')[:12]}`, effective parameters sha256 "
            f"`{rec['params_sha256'][:12]}`)."]


def _threshold_lines(model: LeadModel, metrics: dict) -> list[str]:
    th = model.info.get("thresholds")
    if not th:
        return []
    return [
        "", "## Thresholds (from sales capacity)", "",
        f"Chosen by {th['chosen_by']} on the calibration period ({th['weeks']} weeks, "
        f"{th['leads_per_week']:.0f} open leads a week): SQL threshold (sales-ready, grade B) "
        f"{th['sales_ready']:.4f} = {th['sales_ready_leads_per_week']:.1f} leads a week; grade A from {th['a']:.4f}, "
        f"C from {th['c']:.4f}, D below.",
        "The threshold table of the test period is `plots/thresholds.csv` (and `leadscore thresholds` on recent data).",
    ]
