"""The quarter ahead, replayed: a rolling-origin backtest of the model against its baselines.

For each cut-off the model is trained exactly as ``leadscore train`` would have trained it on
that day — only snapshots whose label was known by then, the same early stopping, calibration,
thresholds and refit — and then scores the snapshots of the following window, the way leads
will be scored live. The last cut-off is the test period's start; the earlier ones step back by
the test period's length, so every window is as long as the test period and no two overlap.

On exactly the same rows the SLA rules and a regularised logistic regression (trained on the
same rows as the model) score too; ``training.metrics.compare`` measures all three per window
and pooled, with bootstrap intervals over leads, and the capacity view (top-k per week).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.config.params import Params
from leadscore.features.build import compute_features
from leadscore.features.contract import Export
from leadscore.features.spec import FeatureSpec
from leadscore.models.decision import grades_of
from leadscore.models.lgbm import LeadModel
from leadscore.models.rules import RuleScorer, load_rules
from leadscore.training.baselines import fit_logistic, predict_logistic
from leadscore.training.dataset import assign_split, horizon_days, with_horizon
from leadscore.training.metrics import compare, week_codes
from leadscore.training.train import fit_model, refit_rows

SCORERS = ("model", "rules", "logistic")


def fold_windows(as_of: pd.Series, test_start: pd.Timestamp, folds: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``folds`` back-to-back windows ``[start, end)`` ending with the test period."""
    end = as_of.max() + pd.Timedelta(seconds=1)
    length = end - test_start
    return [(test_start - k * length, test_start - (k - 1) * length) for k in range(folds - 1, -1, -1)]


def rule_probabilities(rows: pd.DataFrame, export: Export, params: Params, rules_path: Path | str | None = None
                       ) -> tuple[np.ndarray, list[str]]:
    """The SLA rules' probability and grade for snapshots (lead_id, as_of) of an export."""
    rules = RuleScorer(load_rules(rules_path), params.features)
    raw = compute_features(rows[["lead_id", "as_of"]].reset_index(drop=True), export.leads, export.activities,
                           rules.spec, engine=params.features.engine)
    total, _, excluded = rules.points(raw)
    return rules.probability(total), rules.grades(total, excluded)


def run_backtest(
    table: pd.DataFrame,
    spec: FeatureSpec,
    export: Export,
    params: Params,
    test_start: pd.Timestamp,
    *,
    rules_path: Path | str | None = None,
    final_model: LeadModel | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Train and score every fold; the report (per fold and pooled) and the scored rows.

    ``final_model`` (trained with the same params on the same table, e.g. the one being
    registered) scores the last fold instead of a retrained copy. A fold whose training data cannot make a model (too short, one class) is reported with the
    reason and left out of the pooled numbers; if no fold can, ``ValueError`` says why.
    """
    if final_model is not None and final_model.info.get("horizon_days") is not None:
        params = with_horizon(params, final_model.info["horizon_days"])  # label and purge as the model did
    days = horizon_days(params)
    cfg = params.backtest
    capacity = params.thresholds.capacity_per_week
    windows = fold_windows(table["as_of"], pd.Timestamp(test_start), cfg.folds)
    scored, folds = [], []
    for i, (start, end) in enumerate(windows, 1):
        if progress:
            progress(f"fold {i} of {len(windows)}: training on data before {start.date()}"
                     if i < len(windows) or final_model is None else f"fold {i} of {len(windows)}: the trained model")
        known = table[table["as_of"] < start]
        test = table[(table["as_of"] >= start) & (table["as_of"] < end)]
        fold = {"fold": i, "start": start.isoformat(), "end": min(end, table["as_of"].max()).isoformat()}
        try:
            split, _ = assign_split(known, params, test_start=start)
            known = known.assign(split=split.to_numpy())
            last = i == len(windows) and final_model is not None
            model = final_model if last else fit_model(known, spec, params, start)
            if test["label"].nunique() < 2:
                raise ValueError(f"the window has {int(test['label'].sum())} won of {len(test)} snapshots")
        except ValueError as exc:
            folds.append({**fold, "skipped": str(exc)})
            continue
        refit = refit_rows(known, params, start)
        logistic = fit_logistic(refit, refit["label"].to_numpy(), spec, c=cfg.logistic_c, seed=params.train.seed)
        p_model = model.predict_proba(test[spec.names])
        part = test[["lead_id", "as_of", "label"]].assign(
            fold=i,
            model=p_model,
            logistic=predict_logistic(logistic, test, spec),
            model_grade=grades_of(p_model, model.cutoffs),
        )
        scored.append(part)
        folds.append({**fold, "train_rows": model.info["train_rows"], "won_deals": model.info["won_deals"],
                      "trees": model.info["trees"], "sales_ready": model.grades["sales_ready"]})
    if not scored:
        raise ValueError("no backtest fold could be trained: " + "; ".join(f"fold {f['fold']}: {f['skipped']}" for f in folds))
    rows = pd.concat(scored, ignore_index=True)
    if progress:
        progress(f"scoring {len(rows):,} backtest snapshots with the SLA rules")
    rows["rules"], rows["rules_grade"] = rule_probabilities(rows, export, params, rules_path)
    for fold in folds:
        if "skipped" in fold:
            continue
        part = rows[rows["fold"] == fold["fold"]]
        if progress:
            progress(f"fold {fold['fold']}: bootstrap intervals ({cfg.bootstrap} resamples of leads)")
        fold.update(_compare(part, capacity, cfg.bootstrap, params.train.seed))
    if progress:
        progress(f"all folds: bootstrap intervals ({cfg.bootstrap} resamples of leads)")
    report = {
        "folds": folds,
        "overall": _compare(rows, capacity, cfg.bootstrap, params.train.seed),
        "capacity_per_week": capacity,
        "horizon_days": days,
    }
    return report, rows


def _compare(rows: pd.DataFrame, capacity: int, n_boot: int, seed: int) -> dict:
    return compare(
        rows["label"].to_numpy(), {name: rows[name].to_numpy() for name in SCORERS}, week_codes(rows["as_of"]),
        rows["lead_id"].to_numpy(), capacity, reference="model", n_boot=n_boot, seed=seed,
    )
