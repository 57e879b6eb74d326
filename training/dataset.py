"""Workflow verb ``features``: a CRM export → labelled point-in-time training set with a time split."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from leadscore.config.params import Params
from leadscore.features.build import compute_features, infer_spec, learn_categories
from leadscore.features.contract import Export, parse_timestamps, read_export
from leadscore.features.snapshots import deal_tracking_start, resolve_horizon, training_snapshots
from leadscore.features.spec import FeatureSpec
from leadscore.training.audit import audit_features, raise_if_leaky

DATASET_FILE = "snapshots.parquet"
SPEC_FILE = "spec.json"
SUMMARY_FILE = "summary.json"


class TooFewWonDealsError(ValueError):
    """Too few won deals to learn from: checked before anything is trained, the SLA rules stay."""


def horizon_days(params: Params) -> int:
    """The label horizon in days; ``auto`` must have been resolved (``with_horizon``) first."""
    days = params.features.horizon_days
    if days == "auto":
        raise ValueError("features.horizon_days is 'auto': it is resolved when the training set is built; "
                         "use training.dataset.with_horizon(params, summary['horizon_days']) (or the model's "
                         "info['horizon_days']) before splitting or labelling")
    return int(days)


def with_horizon(params: Params, days: int | str) -> Params:
    """A copy of ``params`` whose label horizon is ``days`` (a training set's or a model's resolved one)."""
    if days is None or days == "auto":
        raise ValueError("the training set or model names no resolved label horizon (built before horizons were "
                         "stored): rebuild it with `leadscore features` / `leadscore train --data`")
    resolved = params.model_copy(deep=True)
    resolved.features.horizon_days = int(days)
    return resolved


def dataset_params(params: Params, dataset_dir: Path | str) -> Params:
    """``params`` with the label horizon the training set in ``dataset_dir`` was built with."""
    summary = json.loads((Path(dataset_dir) / SUMMARY_FILE).read_text())
    return with_horizon(params, summary["horizon_days"])


def known_before(table: pd.DataFrame, days: int, test_start: pd.Timestamp) -> pd.DataFrame:
    """The snapshots outside the test period whose label is known before ``test_start``."""
    return table[(table["split"] != "test") & (table["as_of"] + pd.Timedelta(days=days) <= test_start)]


def check_won_deals(rows: pd.DataFrame, params: Params, test_start: pd.Timestamp | str, notes: list[str] = ()) -> None:
    """Refuse, before anything is trained, rows (``known_before`` the test period) with fewer won
    deals than ``registry.min_won_deals`` (the one minimum: ``register`` checks the same count)
    or without any lead that did not win. ``notes`` (what the training set chose) end the message."""
    won = int(rows.loc[rows["label"] == 1, "lead_id"].nunique())
    leads = int(rows["lead_id"].nunique())
    needed = params.registry.min_won_deals
    if won < needed or won == leads:
        short = (f"at least {needed} are needed (registry.min_won_deals in params.yaml)" if won < needed
                 else "every one of them won: leads that did not win are needed too")
        raise TooFewWonDealsError(
            f"the export has {won} won deals among {leads:,} leads ({len(rows):,} snapshots) whose outcome is known "
            f"before the test period starts {pd.Timestamp(test_start):%Y-%m-%d}; {short}. No model is trained: the "
            "SLA rules stay the scorer (they answer whenever no model is registered). Retrain when more deals have "
            "closed, or export more history." + "".join(f" Note: {n}." for n in notes)
        )


def assign_split(
    snaps: pd.DataFrame, params: Params, test_start: pd.Timestamp | None = None
) -> tuple[pd.Series, dict[str, str]]:
    """Time-ordered split: train … | gap | valid … | gap | test.

    A snapshot's label is only known ``horizon`` days after its as_of, so each period ends one
    horizon before the next begins: no training label comes from the validation or test period.
    ``test_share`` and ``validation_share`` are shares of all snapshots; rows in the gaps are
    ``purged`` (counted, not used). A given ``test_start`` (a backtest's cut-off) replaces the
    test share.
    """
    days = horizon_days(params)
    horizon = pd.Timedelta(days=days)
    as_of = snaps["as_of"].sort_values(ignore_index=True)
    n = len(as_of)
    if test_start is None:
        test_start = as_of.iloc[min(n - 1, int(n * (1 - params.split.test_share)))]
    valid_end = test_start - horizon
    before = as_of[as_of < valid_end]
    n_valid = int(n * params.split.validation_share)
    if len(before) <= n_valid:
        raise ValueError(
            f"the export spans {as_of.iloc[0].date()} to {as_of.iloc[-1].date()}: too short for a training, "
            f"validation and test period separated by the {days}-day horizon"
        )
    valid_start = before.iloc[len(before) - n_valid]
    train_end = valid_start - horizon
    split = pd.Series("purged", index=snaps.index, dtype="object")
    split[snaps["as_of"] >= test_start] = "test"
    split[(snaps["as_of"] >= valid_start) & (snaps["as_of"] < valid_end)] = "valid"
    split[snaps["as_of"] < train_end] = "train"
    cutoffs = {"train_end": train_end, "valid_start": valid_start, "valid_end": valid_end, "test_start": test_start}
    return split, {k: v.isoformat() for k, v in cutoffs.items()}


AUDIT_FILE = "audit.json"
EXCLUDE_HOW = ("add them to `features.exclude` in params.yaml, each with its reason "
               "(e.g. `exclude: {phone_2: \"personal data\"}` under `features:`)")
DATE_SHARE = 0.95  # a profile column whose filled values parse as timestamps this often holds dates


def dated_profile_columns(leads: pd.DataFrame, spec: FeatureSpec, lead_ids: pd.Series) -> pd.DataFrame:
    """Profile features whose values are dates (e.g. ``budget_confirmed_at``), as timestamps per
    snapshot row: the audit checks none is dated at or after its snapshot. Empty if there are none."""
    times = {}
    profile = leads.drop_duplicates("lead_id").set_index("lead_id")
    for col, kind in spec.profile_columns.items():
        values = profile[col]
        filled = values.notna()
        if kind != "category" or not filled.any():
            continue
        parsed = parse_timestamps(values.where(filled).astype("object"))
        if parsed[filled].notna().mean() >= DATE_SHARE:
            times[col] = parsed.reindex(lead_ids.to_numpy()).to_numpy()
    return pd.DataFrame(times, index=lead_ids.index)


def build_dataset(
    export: Export | Path | str, params: Params, out_dir: Path | str, *, allow_leaky: bool = False
) -> dict:
    """Write ``snapshots.parquet`` (lead_id, as_of, label, split, raw features) and ``spec.json``.

    Every feature is audited for leakage on the rows a model learns from; a suspicious one stops
    the run with the column and the evidence (raises LeakageError) unless ``allow_leaky``.
    """
    export = export if isinstance(export, Export) else read_export(export)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Deal tracking that starts long after the leads would label every earlier lead lost: start there.
    tracking = deal_tracking_start(export)
    since = tracking.starts if tracking is not None else None
    horizon = resolve_horizon(export, params.features, since)
    params = with_horizon(params, horizon.days)
    notes = [horizon.sentence()] + ([tracking.sentence()] if tracking is not None else [])
    snaps, counts = training_snapshots(export, params.features, horizon_days=horizon.days, since=since)
    if snaps.empty:
        raise ValueError(
            f"no labelled snapshots: every snapshot is censored (horizon {horizon.days} days, "
            f"export ends {export.data_end}); the export needs more history than the horizon"
        )
    split, cutoffs = assign_split(snaps, params)
    check_won_deals(known_before(snaps.assign(split=split.to_numpy()), horizon.days, cutoffs["test_start"]),
                    params, cutoffs["test_start"], notes)
    spec = infer_spec(export.leads, export.activities, params.features)
    raw = compute_features(snaps, export.leads, export.activities, spec, engine=params.features.engine)
    spec = learn_categories(spec, raw, params.features.max_category_levels)
    learn = (split != "test").to_numpy()
    times = dated_profile_columns(export.leads, spec, snaps["lead_id"])
    audit = audit_features(
        raw.loc[learn], snaps["label"].loc[learn], **params.audit.model_dump(),
        times=times.loc[learn] if not times.empty else None,
        as_of=snaps["as_of"].loc[learn] if not times.empty else None,
        groups=snaps["lead_id"].loc[learn],  # a lead's weekly snapshots stay in one fold
        drop_how=EXCLUDE_HOW,
    )
    (out_dir / AUDIT_FILE).write_text(json.dumps({**audit.to_dict(), "allowed_leaky": allow_leaky}, indent=1))
    raise_if_leaky(audit, allow_leaky)
    table = pd.concat([snaps.assign(split=split.to_numpy()), raw], axis=1)
    table.to_parquet(out_dir / DATASET_FILE, index=False)
    (out_dir / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=1))
    summary = {
        **asdict(counts),
        "features": len(spec.features),
        "rows_by_split": {k: int(v) for k, v in split.value_counts().items()},
        "positives_by_split": {k: int(v) for k, v in snaps["label"].groupby(split).sum().items()},
        "data_start": export.leads["created_at"].min().isoformat(),
        "training_start": (since or export.leads["created_at"].min()).isoformat(),
        "horizon_days": horizon.days,  # every consumer labels and splits with this (model.info too)
        "horizon": horizon.to_dict(),
        "deal_tracking": tracking.to_dict() if tracking is not None else None,
        "notes": notes,  # printed by `leadscore features` / `train --data`
        "data_end": export.data_end.isoformat(),
        "dropped_rows": export.dropped,
        "leakage_audit": "passed" if audit.passed else "findings allowed by --allow-leaky",
        "excluded_columns": dict(spec.excluded),  # features.exclude: column → why (the model card lists them)
        "exclude_not_found": [c for c in params.features.exclude if c not in spec.excluded],
        **cutoffs,
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return summary


def load_dataset(folder: Path | str) -> tuple[pd.DataFrame, FeatureSpec]:
    folder = Path(folder)
    table = pd.read_parquet(folder / DATASET_FILE)
    spec = FeatureSpec.from_dict(json.loads((folder / SPEC_FILE).read_text()))
    return table, spec
