"""How well leads of a flat export (one row per lead, no activity log) can be scored.

``evaluate_flat`` measures three scorers on the same rows of a dataset described by a flat spec
(``features.flat``):

- ``model``: LightGBM with ``params.train.lgbm``, early-stopped on one inner part of its training
  rows and calibrated (``models.calibration``, Platt or isotonic) on another, then refit on all of
  its training rows with the same number of trees (as ``training.train.fit_model`` does);
- ``logistic``: the regularised logistic regression of ``training.baselines`` (C =
  ``params.backtest.logistic_c``) on the same raw features;
- ``rules``: an SLA points table (``models.rules``, the format of ``models/default_sla.yaml``) on the
  flat columns, if one is given or lies beside the spec as ``<spec stem>_sla.yaml``. Not fitted and
  not calibrated: judge its ranking (ROC AUC, top-k), not its log loss or ECE.

Two evaluations:

1. **Time-ordered** (when the spec has a ``time_column``): the earliest ``1 - test_share`` of the
   rows train, the latest ``test_share`` test; every training row is strictly earlier than every
   test row (rows sharing a timestamp go to the same side). Inside the training rows, the latest
   ``inner_share`` early-stops (its earlier part) and calibrates (its later
   ``params.train.calibration_share``) the booster. ``training.metrics.compare`` measures all
   scorers on the test rows with a bootstrap over leads (every row is its own lead). For top-k, real
   dates are grouped in calendar weeks; ``row_order`` specs have no dates, so a "week" is a block of
   ``block_rows`` consecutive rows of the file (500 by default: the top 50 of every 500 leads, the
   same block whatever the capacity, so top-k rates of different capacities stay comparable).
   Diagnostics beside it: the booster's raw-margin AUC (an isotonic calibrator can tie scores),
   its AUC on the early-stopping period, and the test AUC of a booster with the median number of
   trees CV chose and no early stopping, so a degenerate early stop is visible (and noted).
2. **Cross-validation**: stratified K-fold at random (``folds``); inside each fold's training rows a
   stratified random 20 % early-stops and calibrates. ROC AUC per fold, mean and standard
   deviation for every scorer, and ``compare`` on the pooled out-of-fold predictions.

With a time column, ``drift`` reports the positive rate per time decile (with the mean prediction
of the time-ordered model and of the CV model in each), the base rate of the training and test
periods, how well the row's time alone ranks the label, how well the features tell the test period
from the training period, and the features whose distribution moved most. That is what explains a
gap between random CV and the time-ordered test (UCI Bank Marketing: the macro indicators identify
the month, so random folds interpolate each period's base rate, which a model trained on the past
cannot know).

``since`` leaves out rows before a time (a date, or a row position for ``row_order``) from every
evaluation: for exports whose label could not be observed early on (Olist records won deals only
from 2017-12-05). Every choice made is written to ``notes`` in the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from leadscore.config.params import Params
from leadscore.features.flat import FlatDataset, load_flat
from leadscore.features.spec import FeatureDef, FeatureSpec
from leadscore.models import calibration
from leadscore.models.calibration import fit_calibrator
from leadscore.models.rules import RulesConfig, RuleScorer, load_rules
from leadscore.models.treeshap import FastTreeShap
from leadscore.training.baselines import fit_logistic, predict_logistic
from leadscore.training.metrics import compare, verdict, week_codes
from leadscore.training.plots import shap_importance, write_plots

RESULT_FILE = "flat_eval.json"
PLOTS_DIR = "plots"
SLA_SUFFIX = "_sla.yaml"
DECILES = 10
# A first time decile whose positive rate is below this share of the later rows' rate gets a note.
LOW_EARLY_RATE = 0.25
# Boosting rounds of the "which period is this row from?" classifier (drift, not the model).
PERIOD_ROUNDS = 200


class FlatEvalError(ValueError):
    """The dataset cannot be evaluated as asked; the message says why."""


# ---------------------------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------------------------


def flat_feature_spec(features: pd.DataFrame, groups: dict[str, str]) -> FeatureSpec:
    """A ``FeatureSpec`` of a flat frame's columns (category or numeric by dtype), for the
    logistic baseline of ``training.baselines``; a flat export has no activity layout."""
    defs = [
        FeatureDef(col, groups.get(col, "fit"),
                   "category" if isinstance(features[col].dtype, pd.CategoricalDtype) else "numeric")
        for col in features.columns
    ]
    return FeatureSpec(activity_types=[], windows_days=[], hand_raiser_types=[], sales_activity_types=[],
                       free_mail_domains=[], competitor_domains=[], lead_columns=[], profile_columns={},
                       features=defs)


def _lgb_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Positional column names (f0, f1, …): flat exports name columns with spaces and punctuation,
    which LightGBM rewrites or refuses. Category dtypes (with all levels of the file) are kept, so
    every slice encodes a level with the same code."""
    return features.set_axis([f"f{i}" for i in range(features.shape[1])], axis=1)


def _shap_matrix(features: pd.DataFrame) -> np.ndarray:
    """What LightGBM sees: floats, and for a category its code in the file's levels (NaN if missing)."""
    out = np.empty(features.shape, dtype="float64")
    for j, col in enumerate(features.columns):
        values = features[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            out[:, j] = values.to_numpy(dtype="float64", na_value=np.nan)
    return out


def _need_both(name: str, y: np.ndarray) -> None:
    if len(np.unique(y)) < 2:
        raise FlatEvalError(f"the {name} has {int(np.sum(y))} positives of {len(y)} rows; both classes are needed")


def _lgb_params(params: Params) -> dict[str, Any]:
    return {**params.train.lgbm, "seed": params.train.seed, "deterministic": True}


def fit_flat_model(
    X: pd.DataFrame, y: np.ndarray, fit_rows: np.ndarray, stop_rows: np.ndarray, cal_rows: np.ndarray,
    params: Params, *, refit: bool = True,
) -> dict[str, Any]:
    """LightGBM learns from ``fit_rows``, early-stops on ``stop_rows``; its margins on ``cal_rows``
    (rows it never saw) fit the calibrator. With ``refit`` the returned booster is retrained on all
    three parts with the same settings and number of trees."""
    y = np.asarray(y)
    for name, rows in (("boosting part", fit_rows), ("early-stopping part", stop_rows), ("calibration part", cal_rows)):
        _need_both(name, y[rows])
    frame = _lgb_frame(X)
    lgb_params = _lgb_params(params)
    dtrain = lgb.Dataset(frame.iloc[fit_rows], label=y[fit_rows], categorical_feature="auto", free_raw_data=False)
    dstop = lgb.Dataset(frame.iloc[stop_rows], label=y[stop_rows], reference=dtrain)
    booster = lgb.train(
        lgb_params, dtrain, num_boost_round=params.train.num_boost_round, valid_sets=[dstop], valid_names=["stop"],
        callbacks=[lgb.early_stopping(params.train.early_stopping_rounds, verbose=False)],
    )
    rounds = int(booster.best_iteration or params.train.num_boost_round)
    stop_margin = booster.predict(frame.iloc[stop_rows], num_iteration=rounds, raw_score=True)
    cal_margin = booster.predict(frame.iloc[cal_rows], num_iteration=rounds, raw_score=True)
    calibrator = fit_calibrator(cal_margin, y[cal_rows], params.train.calibration)
    if refit:
        every = np.concatenate([fit_rows, stop_rows, cal_rows])
        booster = lgb.train(lgb_params, lgb.Dataset(frame.iloc[every], label=y[every], categorical_feature="auto"),
                            num_boost_round=rounds)
    return {"booster": booster, "rounds": rounds, "calibrator": calibrator, "refit": refit,
            "splits": booster_splits(booster),
            "early_stopping_roc_auc": float(roc_auc_score(y[stop_rows], stop_margin)),
            "rows": {"boosting": len(fit_rows), "early_stopping": len(stop_rows), "calibration": len(cal_rows)}}


def model_probability(fitted: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    booster = fitted["booster"]
    rounds = None if fitted["refit"] else fitted["rounds"]
    margin = booster.predict(_lgb_frame(X), num_iteration=rounds, raw_score=True)
    return calibration.apply(fitted["calibrator"], margin)


def model_contributions(fitted: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    """Exact SHAP values (log-odds) per row and feature, without the bias column."""
    if not fitted["refit"]:  # FastTreeShap explains every tree; an unrefitted booster has extra ones
        raise FlatEvalError("SHAP needs the refit booster (refit=True)")
    return FastTreeShap(fitted["booster"]).contributions(_shap_matrix(X))[:, :-1]


def find_rules(spec_path: Path, rules_path: Path | str | bool | None) -> Path | None:
    """The SLA file to use: the one given, none for ``False``, else ``<spec stem>_sla.yaml`` beside
    the spec if it exists."""
    if rules_path is False:
        return None
    if rules_path is None or rules_path is True:
        sibling = spec_path.with_name(spec_path.stem + SLA_SUFFIX)
        if sibling.exists():
            return sibling
        if rules_path is True:
            raise FlatEvalError(f"no SLA file beside the spec: {sibling} does not exist")
        return None
    return Path(rules_path)


def flat_rule_scorer(config: RulesConfig, data: FlatDataset, params: Params, source: str) -> RuleScorer:
    """A ``RuleScorer`` over the flat columns; every rule must name a feature the spec keeps."""
    problems = []
    for i, rule in enumerate(config.rules):
        if rule.feature in data.dropped:
            problems.append(f"rules.{i}: '{rule.feature}' is dropped by the spec ({data.dropped[rule.feature]})")
        elif rule.feature not in data.features.columns:
            problems.append(f"rules.{i}: '{rule.feature}' is not a feature of {data.name} "
                            f"(features: {', '.join(data.features.columns)})")
        elif rule.half_life_days is not None:
            problems.append(f"rules.{i}: half_life_days needs an activity log; a flat export has none")
    if problems:
        raise FlatEvalError(f"{source}: " + "; ".join(problems))
    return RuleScorer(config, params.features)


def rule_scores(scorer: RuleScorer, features: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The rules' probability (``probability`` midpoint/scale of the SLA) and grade A–D per row."""
    total, _, excluded = scorer.points(features)
    return scorer.probability(total), scorer.grades(total, excluded)


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def time_cut(time: pd.Series, later_share: float) -> Any:
    """The time from which about ``later_share`` of the rows are later (ties go later)."""
    values = np.sort(time.to_numpy())
    pos = min(len(values) - 1, max(1, int(round(len(values) * (1 - later_share)))))
    cut = values[pos]
    if cut == values[0]:
        raise FlatEvalError(f"cannot split by time: the earliest {pos} rows share one time {cut}")
    return cut


def time_split(time: pd.Series, test_share: float, inner_share: float, calibration_share: float) -> dict[str, np.ndarray]:
    """Row positions of boosting | early stopping | calibration | test, in that time order.

    Test: the latest ``test_share`` of the rows; early stopping + calibration: the latest
    ``inner_share`` of the remaining rows, the later ``calibration_share`` of it calibrating."""
    time = time.reset_index(drop=True)
    t = time.to_numpy()
    test_start = time_cut(time, test_share)
    train = np.flatnonzero(t < test_start)
    inner_start = time_cut(time.iloc[train], inner_share)
    inner = train[t[train] >= inner_start]
    cal_start = time_cut(time.iloc[inner], calibration_share)
    return {
        "boosting": train[t[train] < inner_start],
        "early_stopping": inner[t[inner] < cal_start],
        "calibration": inner[t[inner] >= cal_start],
        "test": np.flatnonzero(t >= test_start),
    }


def random_inner_split(rows: np.ndarray, y: np.ndarray, inner_share: float, calibration_share: float,
                       seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boosting, early-stopping and calibration rows of a fold's training rows, stratified at random."""
    fit, inner = train_test_split(rows, test_size=inner_share, stratify=y[rows], random_state=seed)
    stop, cal = train_test_split(inner, test_size=calibration_share, stratify=y[inner], random_state=seed + 1)
    return np.sort(fit), np.sort(stop), np.sort(cal)


def _weeks(data: FlatDataset, rows: np.ndarray, block_rows: int) -> np.ndarray:
    """Calendar weeks of real dates; otherwise blocks of ``block_rows`` consecutive rows of the file."""
    if data.time is not None and pd.api.types.is_datetime64_any_dtype(data.time):
        return week_codes(data.time.iloc[rows])
    position = data.time.to_numpy()[rows] if data.time is not None else rows
    return np.asarray(position, dtype="int64") // block_rows


def _stamp(value: Any) -> Any:
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    return int(value) if isinstance(value, (np.integer, int)) else value


# ---------------------------------------------------------------------------------------------
# Evaluations
# ---------------------------------------------------------------------------------------------


def _score_all(fitted, logistic, rules, X: pd.DataFrame, lspec: FeatureSpec) -> tuple[dict[str, np.ndarray], list[str] | None]:
    scores = {"model": model_probability(fitted, X), "logistic": predict_logistic(logistic, X, lspec)}
    grades = None
    if rules is not None:
        scores["rules"], grades = rule_scores(rules, X)
    return scores, grades


def _verdicts(report: dict) -> list[str]:
    out = []
    for other, diff in report.get("difference", {}).items():
        for metric in ("roc_auc", "top_k_win_rate"):
            out.append(verdict(diff, "model", other, metric))
    return out


def booster_splits(booster: lgb.Booster) -> int:
    """How many splits a booster has (0: every tree is one leaf, it predicts a constant)."""
    return int(sum(tree["num_leaves"] - 1 for tree in booster.dump_model()["tree_info"]))


def degenerate_reasons(timed: dict | None, params: Params, drift: dict | None = None) -> list[str]:
    """Why a time-ordered result says nothing: a test window with one class or fewer positives (or
    negatives) than ``registry.min_won_deals``, a model without a split or with constant test
    scores, an early stop that ranked its own period no better than chance. Empty when sound."""
    if timed is None:
        return []
    if "skipped" in timed:
        return [f"the time-ordered test could not run: {timed['skipped']}"]
    reasons = []
    needed = params.registry.min_won_deals
    m = timed["metrics"]
    pos, rows = m["positives"], m["rows"]
    if min(pos, rows - pos) < needed:
        reasons.append(f"the test window has {pos:,} positives and {rows - pos:,} negatives of {rows:,} rows; at least "
                       f"{needed} of each are needed (registry.min_won_deals)")
    if timed.get("model_splits") == 0:
        reasons.append(f"the model has no split ({timed['trees']} tree(s) of one leaf): it predicts a constant")
    elif timed["model_distinct_probabilities"] <= 1:
        reasons.append("the model gives every test row the same probability")
    if timed["early_stopping_roc_auc"] <= 0.5:  # chance: the stopping rule had nothing to go on
        reasons.append(f"early stopping kept {timed['trees']} tree(s) on a period the booster ranks with ROC AUC "
                       f"{timed['early_stopping_roc_auc']:.3f} (no better than chance), so the number of trees "
                       "is arbitrary")
    if reasons and drift and drift.get("time_split"):
        ts = drift["time_split"]
        reasons.append(
            f"the time-ordered cut leaves a window unlike its past: base rate {ts['train_positive_rate']:.1%} in the "
            f"training period, {ts['test_positive_rate']:.1%} in the test period, and the features tell the two "
            f"periods apart with ROC AUC {ts['period_roc_auc']:.3f}. `--since` is the honest answer only if the early "
            "labels could not be observed (censoring); a different split.test_share moves the cut but not the "
            "regime change, so judge this export by its cross-validation and say that it cannot be tested on its "
            "future")
    return reasons


def time_ordered(data: FlatDataset, params: Params, rules: RuleScorer | None, lspec: FeatureSpec, *,
                 test_share: float, inner_share: float, n_boot: int, block_rows: int, refit: bool,
                 fixed_trees: int | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Train on the past, test on the latest rows; the report and what the plots need.

    With ``fixed_trees`` a second booster learns from all training rows with that many trees and
    no early stopping; its test ROC AUC (ranking only, uncalibrated) tells an early-stopping period
    unlike the test period apart from leadscore.features that do not carry over."""
    parts = time_split(data.time, test_share, inner_share, params.train.calibration_share)
    X, y = data.features, data.label.to_numpy()
    train = np.sort(np.concatenate([parts["boosting"], parts["early_stopping"], parts["calibration"]]))
    test = parts["test"]
    _need_both("test period", y[test])
    if progress:
        progress(f"time-ordered: training on {len(train):,} rows, testing on the latest {len(test):,}")
    fitted = fit_flat_model(X, y, parts["boosting"], parts["early_stopping"], parts["calibration"], params, refit=refit)
    logistic = fit_logistic(X.iloc[train], y[train], lspec, c=params.backtest.logistic_c, seed=params.train.seed)
    scores, grades = _score_all(fitted, logistic, rules, X.iloc[test], lspec)
    # The booster's own ranking: a calibrator is monotone, but isotonic steps can tie scores.
    margin = fitted["booster"].predict(_lgb_frame(X.iloc[test]), num_iteration=None if refit else fitted["rounds"],
                                       raw_score=True)
    if progress:
        progress(f"time-ordered: bootstrap intervals ({n_boot} resamples of leads)")
    report = compare(y[test], scores, _weeks(data, test, block_rows), data.ids.to_numpy()[test],
                     params.thresholds.capacity_per_week, reference="model", n_boot=n_boot, seed=params.train.seed)
    t = data.time
    periods = {name: [_stamp(t.iloc[rows].min()), _stamp(t.iloc[rows].max())] for name, rows in parts.items()}
    result = {
        "train_rows": int(len(train)),
        "test_rows": int(len(test)),
        "periods": periods,
        "positive_rate": {name: float(y[rows].mean()) for name, rows in parts.items()},
        "later_than_train": bool(t.iloc[test].min() > t.iloc[train].max()),
        "trees": fitted["rounds"],
        "model_splits": fitted["splits"],
        "calibration": {k: v for k, v in fitted["calibrator"].items() if k not in ("x", "y", "logit")},
        "model_margin_roc_auc": float(roc_auc_score(y[test], margin)),
        "early_stopping_roc_auc": fitted["early_stopping_roc_auc"],
        "model_distinct_probabilities": int(len(np.unique(scores["model"]))),
        "model_rows": fitted["rows"],
        "metrics": report,
        "verdicts": _verdicts(report),
    }
    if fixed_trees:
        frame = _lgb_frame(X)
        fixed = lgb.train(_lgb_params(params), lgb.Dataset(frame.iloc[train], label=y[train], categorical_feature="auto"),
                          num_boost_round=int(fixed_trees))
        result["fixed_trees"] = {"trees": int(fixed_trees),
                                 "roc_auc": float(roc_auc_score(y[test], fixed.predict(frame.iloc[test], raw_score=True)))}
    contrib = model_contributions(fitted, X.iloc[test]) if refit else None
    plot = {"y": y[test], "scores": scores, "grades": grades, "contrib": contrib, "rows": test}
    return result, plot


def cross_validate(data: FlatDataset, params: Params, rules: RuleScorer | None, lspec: FeatureSpec, *,
                   folds: int, inner_share: float, n_boot: int, block_rows: int, refit: bool,
                   progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Stratified K-fold at random: AUC per fold and scorer, and the pooled out-of-fold predictions."""
    X, y = data.features, data.label.to_numpy()
    if folds < 2:
        raise FlatEvalError(f"cross-validation needs at least 2 folds, got {folds}")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=params.train.seed)
    names = ["model", "logistic"] + (["rules"] if rules is not None else [])
    oof = {name: np.full(len(y), np.nan) for name in names}
    fold_of = np.zeros(len(y), dtype="int64")
    aucs: dict[str, list[float]] = {name: [] for name in names}
    trees: list[int] = []
    contrib = np.zeros((len(y), X.shape[1])) if refit else None
    grades = np.empty(len(y), dtype=object) if rules is not None else None
    for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y), 1):
        if progress:
            progress(f"cross-validation: fold {k} of {folds}")
        fit_rows, stop_rows, cal_rows = random_inner_split(tr, y, inner_share, params.train.calibration_share,
                                                           params.train.seed + k)
        fitted = fit_flat_model(X, y, fit_rows, stop_rows, cal_rows, params, refit=refit)
        logistic = fit_logistic(X.iloc[tr], y[tr], lspec, c=params.backtest.logistic_c, seed=params.train.seed)
        scores, fold_grades = _score_all(fitted, logistic, rules, X.iloc[te], lspec)
        for name, p in scores.items():
            oof[name][te] = p
            aucs[name].append(float(roc_auc_score(y[te], p)))
        if grades is not None:
            grades[te] = fold_grades
        if contrib is not None:
            contrib[te] = model_contributions(fitted, X.iloc[te])
        fold_of[te] = k
        trees.append(fitted["rounds"])
    if progress:
        progress(f"cross-validation: bootstrap intervals on the pooled out-of-fold rows ({n_boot} resamples)")
    rows = np.arange(len(y))
    pooled = compare(y, oof, _weeks(data, rows, block_rows), data.ids.to_numpy(), params.thresholds.capacity_per_week,
                     reference="model", n_boot=n_boot, seed=params.train.seed)
    result = {
        "folds": folds,
        "stratified": True,
        "roc_auc": {name: {"folds": [round(a, 6) for a in v], "mean": float(np.mean(v)),
                           "std": float(np.std(v, ddof=1))} for name, v in aucs.items()},
        "trees": trees,
        "pooled": pooled,
        "verdicts": _verdicts(pooled),
    }
    plot = {"y": y, "scores": oof, "grades": None if grades is None else grades.tolist(), "contrib": contrib,
            "rows": rows, "fold": fold_of}
    return result, plot


def _decile_table(data: FlatDataset, extra: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Rows in time order cut into equal-count deciles: period, rows, positive rate, and the mean
    of each given prediction (values, row positions) over its rows in the decile."""
    order = np.argsort(data.time.to_numpy(), kind="stable")
    y = data.label.to_numpy()
    lookup = {}
    for name, (values, rows) in extra.items():
        full = np.full(len(y), np.nan)
        full[rows] = values
        lookup[name] = full
    out = []
    for i, part in enumerate(np.array_split(order, DECILES), 1):
        row = {"decile": i, "from": _stamp(data.time.iloc[part].min()), "to": _stamp(data.time.iloc[part].max()),
               "rows": int(len(part)), "positive_rate": float(y[part].mean())}
        for name, full in lookup.items():
            v = full[part]
            row[name] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        out.append(row)
    return out


def _shifted_features(X: pd.DataFrame, train: np.ndarray, test: np.ndarray, top: int = 5) -> list[dict]:
    """Features whose distribution moved most from the training to the test period: standardised
    mean difference and share of test rows outside the training range (numeric), total variation
    distance of the level shares (category)."""
    out = []
    for col in X.columns:
        a, b = X[col].iloc[train], X[col].iloc[test]
        if isinstance(X[col].dtype, pd.CategoricalDtype):
            pa = a.value_counts(normalize=True, dropna=False)
            pb = b.value_counts(normalize=True, dropna=False)
            tvd = float(0.5 * pa.subtract(pb, fill_value=0).abs().sum())
            out.append({"feature": col, "kind": "category", "shift": tvd, "total_variation": tvd})
        else:
            a, b = a.dropna(), b.dropna()
            if a.empty or b.empty:
                continue
            sd = np.sqrt((a.var(ddof=0) + b.var(ddof=0)) / 2) or 1.0
            smd = float((b.mean() - a.mean()) / sd)
            outside = float(((b < a.min()) | (b > a.max())).mean())
            out.append({"feature": col, "kind": "numeric", "shift": abs(smd), "train_mean": float(a.mean()),
                        "test_mean": float(b.mean()), "standardised_difference": smd,
                        "test_outside_train_range": outside})
    return sorted(out, key=lambda r: -r["shift"])[:top]


def _period_auc(X: pd.DataFrame, train: np.ndarray, test: np.ndarray, params: Params) -> float:
    """3-fold CV ROC AUC of LightGBM telling test-period rows from leadscore.training-period rows by their
    features alone: 0.5 = the periods look alike, 1.0 = every row's period is readable."""
    rows = np.concatenate([train, test])
    target = np.r_[np.zeros(len(train)), np.ones(len(test))]
    frame = _lgb_frame(X.iloc[rows])
    lgb_params = _lgb_params(params)
    pred = np.zeros(len(rows))
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=params.train.seed).split(rows, target):
        b = lgb.train(lgb_params, lgb.Dataset(frame.iloc[tr], label=target[tr], categorical_feature="auto"),
                      num_boost_round=PERIOD_ROUNDS)
        pred[te] = b.predict(frame.iloc[te])
    return float(roc_auc_score(target, pred))


def drift_report(data: FlatDataset, params: Params, timed: dict | None, timed_plot: dict | None,
                 cv_plot: dict) -> dict:
    """The base rate over time and what the time-ordered split's test period looks like."""
    y = data.label.to_numpy()
    rank = data.time.rank(method="average").to_numpy()
    extra = {"cv_model_mean_p": (cv_plot["scores"]["model"], cv_plot["rows"])}
    if timed_plot is not None:
        extra["time_split_model_mean_p"] = (timed_plot["scores"]["model"], timed_plot["rows"])
    report = {
        "deciles": _decile_table(data, extra),
        "time_alone_roc_auc": float(roc_auc_score(y, rank)),
    }
    if timed is not None and timed_plot is not None:
        test = timed_plot["rows"]
        train = np.setdiff1d(np.arange(len(y)), test)
        model = timed["metrics"]["scorers"]["model"]
        report["time_split"] = {
            "train_positive_rate": float(y[train].mean()),
            "test_positive_rate": float(y[test].mean()),
            "test_model_mean_p": model["mean_predicted"],
            "period_roc_auc": _period_auc(data.features, train, test, params),
            "shifted_features": _shifted_features(data.features, train, test),
        }
        # Within-period ranking: the test period in three consecutive parts (in time order).
        by_part = []
        p = timed_plot["scores"]["model"]
        for part in np.array_split(np.argsort(data.time.to_numpy()[test], kind="stable"), 3):
            yt = y[test[part]]
            by_part.append({"from": _stamp(data.time.iloc[test[part]].min()), "to": _stamp(data.time.iloc[test[part]].max()),
                            "rows": int(len(part)), "positive_rate": float(yt.mean()),
                            "model_mean_p": float(p[part].mean()),
                            "model_roc_auc": float(roc_auc_score(yt, p[part])) if 0 < yt.sum() < len(yt) else None})
        report["test_thirds"] = by_part
    return report


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _time_warnings(timed: dict) -> list[str]:
    """Notes when the time-ordered model is degenerate: few trees, or a calibrator that flattened it."""
    out = []
    fixed = timed.get("fixed_trees")
    if timed["trees"] < 20:
        text = (f"Early stopping kept only {timed['trees']} tree(s): more trees did not lower the log loss of the "
                f"early-stopping period (the early-stopped booster ranks that period with ROC AUC "
                f"{timed['early_stopping_roc_auc']:.3f}).")
        if fixed is not None:
            text += (f" With the {fixed['trees']} trees random CV chose (median), no early stopping, the same "
                     f"features rank the test period with ROC AUC {fixed['roc_auc']:.3f} (uncalibrated), so the "
                     "early-stopping period is unlike the test period.")
        out.append(text)
    if timed["model_distinct_probabilities"] <= 3:
        out.append(f"The calibrated model gives only {timed['model_distinct_probabilities']} distinct probability(ies) on "
                   f"the test rows: the calibrator ({timed['calibration'].get('method')}) found no ranking to keep in "
                   f"the calibration period; the booster's raw margin ranks the test rows with ROC AUC "
                   f"{timed['model_margin_roc_auc']:.3f}.")
    return out


def _since(data: FlatDataset, since: Any) -> tuple[FlatDataset, dict]:
    """Leave out rows before ``since``; the count of rows and positives left out."""
    if data.time is None:
        raise FlatEvalError(f"since={since!r} needs a time column; {data.name} has none")
    if pd.api.types.is_datetime64_any_dtype(data.time):
        bound = pd.Timestamp(since)
    else:
        bound = int(since)
    keep = (data.time >= bound).to_numpy()
    gone = {"since": _stamp(bound), "rows": int((~keep).sum()), "positives": int(data.label[~keep].sum())}
    rows = np.flatnonzero(keep)
    features = data.features.iloc[rows].reset_index(drop=True)
    out = FlatDataset(
        name=data.name, features=features, label=data.label.iloc[rows].reset_index(drop=True),
        ids=data.ids.iloc[rows].reset_index(drop=True), time=data.time.iloc[rows].reset_index(drop=True),
        groups=data.groups, dropped=data.dropped, rows_dropped=data.rows_dropped,
    )
    return out, gone


def _without(data: FlatDataset, columns: list[str]) -> FlatDataset:
    return FlatDataset(
        name=data.name, features=data.features.drop(columns=columns), label=data.label, ids=data.ids, time=data.time,
        groups={c: g for c, g in data.groups.items() if c not in columns}, dropped=data.dropped,
        rows_dropped=data.rows_dropped,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp, Path)):
        return str(value)
    return value


def evaluate_flat(
    spec_path: Path | str,
    params: Params,
    data_root: Path | str | None = None,
    out_dir: Path | str | None = None,
    *,
    rules_path: Path | str | bool | None = None,
    folds: int = 5,
    progress: Callable[[str], None] | None = None,
    test_share: float = 0.3,
    inner_share: float = 0.2,
    since: Any = None,
    exclude: list[str] | tuple[str, ...] = (),
    n_boot: int | None = None,
    block_rows: int = 500,
    refit: bool = True,
) -> dict:
    """Model, logistic regression and (if an SLA file is found) rules on a flat dataset: a
    time-ordered test (if the spec has a time column), stratified K-fold CV, drift; see the module
    docstring. ``rules_path``: an SLA file, ``False`` for none, ``None`` for ``<spec stem>_sla.yaml``
    beside the spec if present. ``exclude`` names features no scorer may use (e.g. context that
    only encodes time). ``n_boot`` defaults to ``params.backtest.bootstrap``. With
    ``out_dir``, writes ``flat_eval.json`` and the plots (``plots/``) of the time-ordered test, or
    of the CV out-of-fold predictions without a time column, with SHAP importance."""
    if not 0 < test_share < 1 or not 0 < inner_share < 1:
        raise FlatEvalError(f"test_share and inner_share must lie in (0, 1), got {test_share} and {inner_share}")
    if block_rows < 1:
        raise FlatEvalError(f"block_rows must be at least 1, got {block_rows}")
    spec_path = Path(spec_path)
    n_boot = params.backtest.bootstrap if n_boot is None else int(n_boot)
    say = progress or (lambda _msg: None)
    say(f"loading {spec_path}")
    data = load_flat(spec_path, data_root)
    notes: list[str] = []
    if data.rows_dropped.count:
        notes.append(f"The spec's loader left out rows: {data.rows_dropped}.")
    left_out = None
    if since is not None:
        data, left_out = _since(data, since)
        notes.append(
            f"Rows before {left_out['since']} are left out of every evaluation ({left_out['rows']:,} rows, "
            f"{left_out['positives']:,} positives): their label could not be observed in full."
        )
    _need_both("dataset", data.label.to_numpy())
    if exclude:
        unknown = [c for c in exclude if c not in data.features.columns]
        if unknown:
            raise FlatEvalError(f"exclude: {unknown} are not features of {data.name} "
                                f"(features: {', '.join(data.features.columns)})")
        data = _without(data, list(exclude))
        notes.append(f"Left out of every scorer's features on request: {', '.join(exclude)}.")

    rules_file = find_rules(spec_path, rules_path)
    rules = None
    if rules_file is not None:
        rules = flat_rule_scorer(load_rules(rules_file), data, params, str(rules_file))
        notes.append(f"Rules: {rules.config.name} ({rules_file.name}, {len(rules.config.rules)} rules), written by "
                     "hand and never fitted; their probability is the SLA's uncalibrated points curve, so judge them "
                     "by ranking (ROC AUC, top-k), not by log loss, Brier or ECE.")
    else:
        notes.append("No SLA file for this dataset: model and logistic regression only.")
    lspec = flat_feature_spec(data.features, data.groups)
    notes.append("LightGBM uses params.train.lgbm without monotone constraints (their patterns name event "
                 "features); it is early-stopped and calibrated on inner parts of its training rows, then refit on "
                 "all of them with the same number of trees." if refit else
                 "LightGBM uses params.train.lgbm, early-stopped and calibrated on inner parts of its training rows "
                 "(no refit).")

    cv, cv_plot = cross_validate(data, params, rules, lspec, folds=folds, inner_share=inner_share, n_boot=n_boot,
                                 block_rows=block_rows, refit=refit, progress=say)

    timed = timed_plot = None
    is_dates = data.time is not None and pd.api.types.is_datetime64_any_dtype(data.time)
    if data.time is None:
        notes.append("No time column: no time-ordered evaluation; the plots show the CV out-of-fold predictions, "
                     f"and top-k counts the best k of every block of {block_rows} rows in file order.")
        timed = {"skipped": "the spec has no time_column"}
    else:
        try:
            timed, timed_plot = time_ordered(data, params, rules, lspec, test_share=test_share, inner_share=inner_share,
                                             n_boot=n_boot, block_rows=block_rows, refit=refit,
                                             fixed_trees=int(np.median(cv["trees"])), progress=say)
            periods = timed["periods"]
            notes.append(
                f"Time-ordered: trained on {timed['train_rows']:,} rows from {periods['boosting'][0]} to "
                f"{periods['calibration'][1]} (the latest {inner_share:.0%} of them early-stop and calibrate), "
                f"tested on the latest {timed['test_rows']:,} rows from {periods['test'][0]} to {periods['test'][1]}."
            )
            notes.extend(_time_warnings(timed))
            if is_dates:
                notes.append("Top-k counts the best k leads of every calendar week of the test period.")
            else:
                notes.append(f"The time column is the row order (no dates): top-k counts the best k of every block "
                             f"of {block_rows} consecutive rows of the file, a stand-in for a week.")
        except FlatEvalError as exc:
            timed = {"skipped": str(exc)}
            notes.append(f"Time-ordered evaluation skipped: {exc}")


    drift = None
    if data.time is not None:
        say("drift: positive rate over time, period shift")
        drift = drift_report(data, params, timed if timed_plot is not None else None, timed_plot, cv_plot)
        first, later = drift["deciles"][0], drift["deciles"][1:]
        rest = sum(d["positive_rate"] * d["rows"] for d in later) / sum(d["rows"] for d in later)
        if first["positive_rate"] < LOW_EARLY_RATE * rest:
            notes.append(
                f"The earliest tenth of the rows ({first['from']} to {first['to']}) has a positive rate of "
                f"{first['positive_rate']:.1%} against {rest:.1%} afterwards: either the label could not be observed "
                "yet for early rows (censoring; then leave them out with `since`) or the base rate drifts. A "
                "time-ordered split trains on that period; random CV mixes it into every fold."
            )
        ts = drift.get("time_split")
        if ts is not None:
            notes.append(
                f"Base rate: {ts['train_positive_rate']:.1%} in the training period, {ts['test_positive_rate']:.1%} in "
                f"the test period (the time-ordered model predicts {ts['test_model_mean_p']:.1%} on average there); "
                f"the features tell the two periods apart with ROC AUC {ts['period_roc_auc']:.3f}."
            )

    result = {
        "dataset": data.name,
        "spec": str(spec_path),
        "rows": int(len(data.label)),
        "positives": int(data.label.sum()),
        "positive_rate": data.positive_rate,
        "rows_dropped": str(data.rows_dropped),
        "left_out_before": left_out,
        "features": {g: [c for c, grp in data.groups.items() if grp == g] for g in ("fit", "interest")},
        "scorers": ["model", "logistic"] + (["rules"] if rules is not None else []),
        "rules": None if rules is None else {"file": str(rules_file), "name": rules.config.name,
                                              "rules": len(rules.config.rules)},
        "settings": {"folds": folds, "test_share": test_share, "inner_share": inner_share,
                     "calibration_share": params.train.calibration_share, "bootstrap": n_boot,
                     "capacity_per_week": params.thresholds.capacity_per_week, "block_rows": block_rows,
                     "week": "calendar week" if is_dates else f"block of {block_rows} rows", "refit": refit,
                     "exclude": list(exclude),
                     "logistic_c": params.backtest.logistic_c, "seed": params.train.seed},
        "time_ordered": timed,
        # Non-empty: the time-ordered test says nothing (training.flat_eval.degenerate_reasons); retrain exits 1.
        "degenerate": degenerate_reasons(timed, params, drift) if data.time is not None else [],
        "cv": cv,
        "drift": drift,
        "notes": notes,
    }
    result = _jsonable(result)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plot = timed_plot if timed_plot is not None else cv_plot
        which = "time-ordered test" if timed_plot is not None else f"{folds}-fold CV, out of fold"
        importance = None
        if plot["contrib"] is not None:
            importance = shap_importance(plot["contrib"], list(data.features.columns), dict(data.groups))
        say(f"writing {out / RESULT_FILE} and the plots")
        written = write_plots(out / PLOTS_DIR, plot["y"], plot["scores"],
                              grades=None if plot["grades"] is None else {"rules": np.asarray(plot["grades"])},
                              importance=importance, title=f"{data.name}: {which}")
        result["plots"] = {"of": which, "files": {k: str(v) for k, v in written.items()}}
        if importance is not None:
            result["shap_importance"] = _jsonable(importance.round(6).to_dict(orient="records"))
        (out / RESULT_FILE).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result
