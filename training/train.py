"""Workflow verb ``train``: LightGBM on the training period, early-stopped on the validation period."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from features.build import encode
from leadscore.params import Params
from models.lgbm import LeadModel
from training.dataset import SUMMARY_FILE, load_dataset


def train_model(dataset_dir: Path | str, params: Params, model_dir: Path | str) -> LeadModel:
    """Fit the booster and write it as an MLflow model folder (text booster + feature spec)."""
    table, spec = load_dataset(dataset_dir)
    train, valid = table[table["split"] == "train"], table[table["split"] == "valid"]
    for name, part in (("train", train), ("valid", valid)):
        if part["label"].nunique() < 2:
            raise ValueError(
                f"the {name} period has {int(part['label'].sum())} won and {int((part['label'] == 0).sum())} "
                "other snapshots; both classes are needed (more history, or a shorter horizon)"
            )
    X_train, X_valid = encode(train[spec.names], spec), encode(valid[spec.names], spec)
    lgb_params = {**params.train.lgbm, "seed": params.train.seed, "deterministic": True}
    dtrain = lgb.Dataset(X_train, label=train["label"], categorical_feature="auto", free_raw_data=False)
    dvalid = lgb.Dataset(X_valid, label=valid["label"], reference=dtrain)
    evals: dict = {}
    booster = lgb.train(
        lgb_params,
        dtrain,
        num_boost_round=params.train.num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(params.train.early_stopping_rounds, verbose=False),
            lgb.record_evaluation(evals),
        ],
    )
    summary = json.loads((Path(dataset_dir) / SUMMARY_FILE).read_text())
    rounds = booster.best_iteration or params.train.num_boost_round
    # Early stopping chose the number of trees; the final model learns from every snapshot whose
    # label is known before the test period starts (the purged gaps and validation included),
    # so the evaluation stays honest and the served model sees the most recent behaviour.
    test_start = pd.Timestamp(summary["test_start"])
    horizon = pd.Timedelta(days=params.features.horizon_days)
    refit = table[(table["split"] != "test") & (table["as_of"] + horizon <= test_start)]
    final = lgb.train(
        lgb_params,
        lgb.Dataset(encode(refit[spec.names], spec), label=refit["label"], categorical_feature="auto"),
        num_boost_round=rounds,
    )
    info = {
        "trees": int(rounds),
        "early_stopping_rows": len(train),
        "valid_rows": len(valid),
        "train_rows": len(refit),
        "train_period": [refit["as_of"].min().isoformat(), refit["as_of"].max().isoformat()],
        "data_end": summary["data_end"],
        "test_start": summary["test_start"],
    }
    model = LeadModel(final, spec, params.grades.model_dump(), info)
    model.save(model_dir)
    return model
