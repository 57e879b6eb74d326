"""Workflow verbs ``promote`` and ``rollback``: who serves, decided on evidence.

``leadscore register`` gives every new version the alias ``challenger``. ``promote`` first reads
the version's baseline gate (``training.gate``: over the backtest it beats the SLA rules and is not
significantly worse than logistic regression); a version that failed it, or has none, is never
promoted, the first one included, and the rules (or the old champion) keep serving. Then it scores the
same rows — the test period of the training set, later than anything either model learned
from — with the challenger and the current champion, and moves ``champion`` to the challenger
only if it is not worse beyond the margins in ``params.yaml`` (``registry.max_auc_loss``,
``registry.max_ece_gain``); otherwise it says which margin failed, by how much. An empty
registry promotes its first model if it passed the baseline gate. Every move of ``champion`` is kept in the registered model's
``champion_history`` tag, so ``rollback`` can point it back at the version before.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.config.params import Params
from leadscore.config.settings import Settings, get_settings
from leadscore.features.build import compute_features
from leadscore.features.contract import Export, read_export
from leadscore.models.lgbm import LeadModel
from leadscore.models.registry import load_version, use_tracking
from leadscore.training import gate
from leadscore.training.dataset import load_dataset
from leadscore.training.metrics import compare, week_codes

HISTORY_TAG = "champion_history"


class PromotionError(ValueError):
    """Nothing to promote or roll back to; the message says what is missing."""


def _client(settings: Settings | None):
    import mlflow

    use_tracking(settings or get_settings())
    return mlflow.MlflowClient()


def _alias_version(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_history(client, name: str) -> list[str]:
    try:
        tags = client.get_registered_model(name).tags
    except Exception:  # no registered model yet
        return []
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def _move_champion(client, params: Params, version: str, history: list[str], note: str) -> None:
    name = params.registry.model_name
    client.set_registered_model_alias(name, params.registry.alias, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.set_model_version_tag(name, version, "champion_since", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    client.set_model_version_tag(name, version, "promotion", note)


def _probabilities(model: LeadModel, rows: pd.DataFrame, export: Export | None) -> np.ndarray:
    """A model's probabilities for the rows; features are recomputed from the export when the
    model expects columns the training set does not hold (an older feature layout)."""
    missing = [n for n in model.spec.names if n not in rows.columns]
    if not missing:
        return model.predict_proba(rows[model.spec.names])
    if export is None:
        raise PromotionError(
            f"the champion (version {model.version}) uses features the training set lacks ({', '.join(missing[:5])}…): "
            "pass the export with --data so they can be computed"
        )
    raw = compute_features(rows[["lead_id", "as_of"]].reset_index(drop=True), export.leads, export.activities, model.spec)
    return model.predict_proba(raw)


def promote(
    dataset_dir: Path | str,
    params: Params,
    export: Export | Path | str | None = None,
    settings: Settings | None = None,
    *,
    dry_run: bool = False,
) -> dict:
    """Compare challenger and champion on the training set's test period; move ``champion`` if
    the gate passes (unless ``dry_run``). Returns the decision, the reasons and the numbers."""
    settings = settings or get_settings()
    client = _client(settings)
    name, reg = params.registry.model_name, params.registry
    challenger = _alias_version(client, name, reg.challenger_alias)
    if challenger is None:
        raise PromotionError(f"no '{name}@{reg.challenger_alias}' in the registry: `leadscore register` a model first")
    champion = _alias_version(client, name, reg.alias)
    history = champion_history(client, name)
    if champion is not None and (not history or history[-1] != champion):
        history = history + [champion]  # a champion set before the history was kept
    decision = {"model_name": name, "challenger": challenger, "champion_before": champion, "dry_run": dry_run}
    if champion == challenger:
        return {**decision, "promoted": False, "champion_after": champion,
                "reasons": [f"version {challenger} is already @{reg.alias}"]}
    # The baseline gate first, for the first champion too: a model that cannot beat the SLA rules,
    # or is significantly worse than logistic regression, never serves.
    passed_baselines, why = gate.version_gate(client.get_model_version(name, challenger).tags)
    if not passed_baselines:
        keeps = f"version {champion} stays @{reg.alias}" if champion else "the SLA rules keep serving"
        client.set_model_version_tag(name, challenger, "promotion", "refused by the baseline gate")
        return {**decision, "promoted": False, "passed_gate": False, "champion_after": champion,
                "reasons": [f"version {challenger} is not promoted, {keeps}: {why}"]}
    if champion is None:
        if not dry_run:
            _move_champion(client, params, challenger, history + [challenger],
                           "first model: passed the baseline gate, the registry had no champion")
        return {**decision, "promoted": not dry_run, "passed_gate": True,
                "champion_after": challenger if not dry_run else None,
                "reasons": [f"the registry has no @{reg.alias}, and {why}"]}

    table, _ = load_dataset(dataset_dir)
    rows = table[table["split"] == "test"].reset_index(drop=True)
    if isinstance(export, (str, Path)):
        export = read_export(export)
    new, old = load_version(name, challenger, settings), load_version(name, champion, settings)
    scores = {"challenger": _probabilities(new, rows, export), "champion": _probabilities(old, rows, export)}
    y = rows["label"].to_numpy()
    if len(np.unique(y)) < 2:
        raise PromotionError(f"the test period has {int(y.sum())} won of {len(y)} snapshots: nothing to compare on")
    result = compare(y, scores, week_codes(rows["as_of"]), rows["lead_id"].to_numpy(),
                     params.thresholds.capacity_per_week, reference="challenger",
                     n_boot=params.backtest.bootstrap, seed=params.train.seed)
    new_m, old_m = result["scorers"]["challenger"], result["scorers"]["champion"]
    auc_floor = old_m["roc_auc"] - reg.max_auc_loss
    ece_ceiling = old_m["ece"] + reg.max_ece_gain
    reasons, passed = [why], True
    if new_m["roc_auc"] >= auc_floor:
        reasons.append(f"ROC AUC {new_m['roc_auc']:.4f} against the champion's {old_m['roc_auc']:.4f}: within the "
                       f"allowed loss of {reg.max_auc_loss} (floor {auc_floor:.4f})")
    else:
        passed = False
        reasons.append(f"ROC AUC {new_m['roc_auc']:.4f} is below the champion's {old_m['roc_auc']:.4f} by "
                       f"{old_m['roc_auc'] - new_m['roc_auc']:.4f}, more than the allowed {reg.max_auc_loss} "
                       "(registry.max_auc_loss)")
    if new_m["ece"] <= ece_ceiling:
        reasons.append(f"ECE {new_m['ece']:.4f} against the champion's {old_m['ece']:.4f}: within the allowed "
                       f"rise of {reg.max_ece_gain} (ceiling {ece_ceiling:.4f})")
    else:
        passed = False
        reasons.append(f"ECE {new_m['ece']:.4f} is above the champion's {old_m['ece']:.4f} by "
                       f"{new_m['ece'] - old_m['ece']:.4f}, more than the allowed {reg.max_ece_gain} "
                       "(registry.max_ece_gain): its probabilities are less trustworthy")
    diff = result["difference"]["champion"]["roc_auc"]
    if diff["interval"]:
        lo, hi = diff["interval"]
        reasons.append(f"AUC difference {diff['value']:+.4f}, 95 % bootstrap interval {lo:+.4f} to {hi:+.4f}")
    promoted = passed and not dry_run
    if promoted:
        _move_champion(client, params, challenger, history + [challenger],
                       f"passed the gate against version {champion}")
    else:
        client.set_model_version_tag(name, challenger, "promotion",
                                     ("would pass" if passed else "refused") + f" against version {champion}")
    return {**decision, "promoted": promoted, "passed_gate": passed,
            "champion_after": challenger if promoted else champion, "reasons": reasons,
            "rows": result["rows"], "positives": result["positives"],
            "metrics": {"challenger": _brief(new_m), "champion": _brief(old_m)}}


def _brief(m: dict) -> dict:
    return {k: m[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_k_win_rate")}


def rollback(params: Params, settings: Settings | None = None) -> dict:
    """Point ``champion`` back at the version that held it before the current one."""
    client = _client(settings)
    name, alias = params.registry.model_name, params.registry.alias
    current = _alias_version(client, name, alias)
    history = champion_history(client, name)
    if current is None:
        raise PromotionError(f"no '{name}@{alias}' in the registry: nothing to roll back")
    if history and history[-1] == current:
        history = history[:-1]
    if not history:
        raise PromotionError(f"version {current} is the first recorded @{alias}: there is no earlier one to roll back to")
    previous = history[-1]
    _move_champion(client, params, previous, history, f"rolled back from version {current}")
    client.set_model_version_tag(name, current, "rolled_back", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return {"model_name": name, "champion_before": current, "champion_after": previous}
