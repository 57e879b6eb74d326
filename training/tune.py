"""Optional Optuna search of LightGBM settings, bounded in trials and time.

Each trial trains on the training period and is early-stopped on the earlier part of the
validation period — the same rows ``train_model`` uses to choose the number of trees — and is
judged by its best log loss there (the quantity a calibrated probability cares about). The
calibration rows and the test period are never seen. The best settings replace the search
space's keys in ``train.lgbm``; every trial is kept for the MLflow run (``tuning.json``).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb

SEARCH_KEYS = ("learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction", "lambda_l2", "bagging_fraction")


def _suggest(trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 63),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 50, 800, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 0.1, 50.0, log=True),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
    }


def tune(
    base_params: dict[str, Any],
    dtrain: lgb.Dataset,
    dvalid: lgb.Dataset,
    *,
    trials: int,
    timeout_s: int,
    num_boost_round: int,
    early_stopping_rounds: int,
    seed: int,
    progress=None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The best LightGBM parameters (``base_params`` with the searched keys replaced) and a
    JSON-ready record of the search: every trial's settings, log loss and number of trees."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        params = {**base_params, **_suggest(trial), "bagging_freq": 1, "metric": "binary_logloss"}
        booster = lgb.train(
            params, dtrain, num_boost_round=num_boost_round, valid_sets=[dvalid], valid_names=["valid"],
            callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        )
        trial.set_user_attr("trees", int(booster.best_iteration))
        if progress is not None:
            progress(trial.number + 1, trials)
        return float(booster.best_score["valid"]["binary_logloss"])

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, timeout=timeout_s)
    best = {**base_params, **study.best_params, "bagging_freq": 1}
    record = {
        "trials_run": len(study.trials),
        "trials_asked": trials,
        "timeout_s": timeout_s,
        "best_valid_log_loss": study.best_value,
        "best_params": study.best_params,
        "trials": [
            {"number": t.number, "valid_log_loss": t.value, "trees": t.user_attrs.get("trees"), **t.params}
            for t in study.trials if t.value is not None
        ],
    }
    return best, record
