"""Workflow verb ``train``: LightGBM early-stopped and calibrated on later periods than it learned from."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from leadscore.config.params import Params
from leadscore.features.build import encode, encode_matrix
from leadscore.features.spec import FeatureSpec
from leadscore.models import calibration
from leadscore.models.calibration import fit_calibrator
from leadscore.models.explain import fit_settings
from leadscore.models.lgbm import LeadModel
from leadscore.models.treeshap import FastTreeShap
from leadscore.training.dataset import SUMMARY_FILE, check_won_deals, known_before, load_dataset, with_horizon
from leadscore.training.dataset import horizon_days as resolved_horizon
from leadscore.training.metrics import week_codes
from leadscore.training.thresholds import choose_thresholds, threshold_table
from leadscore.training.tune import tune


def monotone_constraints(spec_names: list[str], increasing: list[str], decreasing: list[str]) -> list[int]:
    """LightGBM's per-feature constraint (+1 rises only, -1 falls only, 0 free) from shell patterns."""
    out = []
    for name in spec_names:
        up = any(fnmatch(name, p) for p in increasing)
        down = any(fnmatch(name, p) for p in decreasing)
        if up and down:
            raise ValueError(f"feature {name!r} matches both train.monotone_increasing and train.monotone_decreasing")
        out.append(1 if up else -1 if down else 0)
    return out


def _need_both_classes(name: str, part: pd.DataFrame) -> None:
    if part["label"].nunique() < 2:
        span = f" ({part['as_of'].min():%Y-%m-%d} to {part['as_of'].max():%Y-%m-%d})" if len(part) else ""
        raise ValueError(
            f"the {name}{span} has {int(part['label'].sum())} won and {int((part['label'] == 0).sum())} "
            "other snapshots; both classes are needed: more history, or a larger split.validation_share / "
            "train.calibration_share in params.yaml"
        )


def refit_rows(table: pd.DataFrame, params: Params, test_start: pd.Timestamp) -> pd.DataFrame:
    """What the final model (and every baseline beside it) learns from: each snapshot whose label
    is known before the test period starts, gaps and validation included, so the most recent
    behaviour is seen."""
    return known_before(table, resolved_horizon(params), test_start)


def fit_model(table: pd.DataFrame, spec: FeatureSpec, params: Params, test_start: pd.Timestamp, progress=None) -> LeadModel:
    """Fit the booster, calibrate it on a later period, choose the thresholds; nothing is written.

    ``table`` holds the snapshots with a ``split`` column (``training.dataset.assign_split``):
    train | gap | validation | gap | test, the test period starting at ``test_start``. A booster
    learns from the training period only; the earlier part of the validation period early-stops
    it, and its out-of-time margins on the later part fit the calibrator (Platt, beta or isotonic, by
    log loss among those that keep the ranking: ``models.calibration.fit_calibrator``) and choose
    the SQL threshold and grades from sales capacity
    (``training.thresholds``). The served booster is then refit with the same settings and
    number of trees on every snapshot whose label is known before ``test_start``, and carries
    that calibrator and those thresholds. On the demo the refit is worth ~0.025 AUC over serving
    the training-period booster.

    With ``train.tune_trials`` > 0, an Optuna search (``training.tune``) on the same early-stopping
    rows chooses the LightGBM settings first; ``progress(done, total)`` hears about each trial.
    """
    train = table[table["split"] == "train"]
    valid = table[table["split"] == "valid"].sort_values("as_of", kind="stable")
    if valid.empty:
        raise ValueError("the validation period is empty: the export is too short for the split in params.yaml")
    cal_start = valid["as_of"].iloc[min(len(valid) - 1, int(len(valid) * (1 - params.train.calibration_share)))]
    stop_rows, cal_rows = valid[valid["as_of"] < cal_start], valid[valid["as_of"] >= cal_start]
    _need_both_classes("training period", train)
    _need_both_classes("early-stopping part of the validation period", stop_rows)
    _need_both_classes("calibration part of the validation period", cal_rows)

    constraints = monotone_constraints(spec.names, params.train.monotone_increasing, params.train.monotone_decreasing)
    lgb_params = {**params.train.lgbm, "seed": params.train.seed, "deterministic": True}
    if any(constraints):
        lgb_params["monotone_constraints"] = constraints
    # A search changes min_data_in_leaf between trials: LightGBM must not pre-filter features for one value.
    dataset_params = {"feature_pre_filter": False} if params.train.tune_trials else None
    dtrain = lgb.Dataset(encode(train[spec.names], spec), label=train["label"], categorical_feature="auto",
                         free_raw_data=False, params=dataset_params)
    dstop = lgb.Dataset(encode(stop_rows[spec.names], spec), label=stop_rows["label"], reference=dtrain)
    tuning = None
    if params.train.tune_trials:
        lgb_params, tuning = tune(
            lgb_params, dtrain, dstop, trials=params.train.tune_trials, timeout_s=params.train.tune_timeout_s,
            num_boost_round=params.train.num_boost_round, early_stopping_rounds=params.train.early_stopping_rounds,
            seed=params.train.seed, progress=progress,
        )
    booster = lgb.train(
        lgb_params,
        dtrain,
        num_boost_round=params.train.num_boost_round,
        valid_sets=[dstop],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(params.train.early_stopping_rounds, verbose=False)],
    )
    rounds = booster.best_iteration or params.train.num_boost_round
    cal_margin = booster.predict(encode_matrix(cal_rows[spec.names], spec), num_iteration=rounds, raw_score=True)
    calibrator = fit_calibrator(cal_margin, cal_rows["label"].to_numpy(), params.train.calibration)
    # Thresholds from capacity on out-of-time, calibrated scores of whole weeks of open leads.
    cal_p = calibration.apply(calibrator, cal_margin)
    cal_week = week_codes(cal_rows["as_of"])
    cutoffs = choose_thresholds(cal_p, cal_week, params.thresholds)
    table_rows = threshold_table(cal_p, cal_week, cal_rows["label"].to_numpy(), capacity=params.thresholds.capacity_per_week)
    refit = refit_rows(table, params, test_start)
    final = lgb.train(
        lgb_params,
        lgb.Dataset(encode(refit[spec.names], spec), label=refit["label"], categorical_feature="auto"),
        num_boost_round=rounds,
    )
    info = {
        "trees": int(rounds),
        "early_stopping_rows": len(train),
        "valid_rows": len(stop_rows),
        "calibration_rows": len(cal_rows),
        "calibration_period": [cal_start.isoformat(), cal_rows["as_of"].max().isoformat()],
        "train_rows": len(refit),
        "won_deals": int(refit.loc[refit["label"] == 1, "lead_id"].nunique()),
        "leads": int(refit["lead_id"].nunique()),
        "train_period": [refit["as_of"].min().isoformat(), refit["as_of"].max().isoformat()],
        "test_start": pd.Timestamp(test_start).isoformat(),
        "monotone": {name: c for name, c in zip(spec.names, constraints) if c},
        "lgbm": {k: v for k, v in lgb_params.items() if k != "monotone_constraints"},
        "thresholds": {**cutoffs, "capacity_per_week": params.thresholds.capacity_per_week,
                       "table": table_rows.round(6).to_dict(orient="records")},
    }
    if tuning is not None:
        info["tuning"] = tuning
    grades = {k: cutoffs[k] for k in ("a", "b", "c", "sales_ready")}
    # Where the fit grades and interest levels are cut: shares of the snapshots it learned from.
    contrib = FastTreeShap(final).contributions(encode_matrix(refit[spec.names], spec))[:, :-1]
    return LeadModel(final, spec, grades, info, calibrator=calibrator,
                     explain=fit_settings(contrib, spec, params, cutoffs["sales_ready"]))


def train_model(dataset_dir: Path | str, params: Params, model_dir: Path | str, progress=None) -> LeadModel:
    """``fit_model`` on a training set from ``leadscore features``, written as an MLflow model folder."""
    table, spec = load_dataset(dataset_dir)
    summary = json.loads((Path(dataset_dir) / SUMMARY_FILE).read_text())
    resolved = with_horizon(params, summary.get("horizon_days"))  # the training set's label horizon
    test_start = pd.Timestamp(summary["test_start"])
    check_won_deals(refit_rows(table, resolved, test_start), resolved, test_start)
    model = fit_model(table, spec, resolved, test_start, progress=progress)
    model.info["data_end"] = summary["data_end"]
    model.info["horizon_days"] = resolved_horizon(resolved)  # monitor and backtest label with the model's horizon
    model.info["horizon"] = summary.get("horizon")
    model.info["params"] = params.record()  # which file trained it: the model card and MLflow say so
    model.save(model_dir)
    return model
