"""The one definition of every feature, used by training, batch scoring and the live API.

Features of a (lead, as_of) pair use only what was known at ``as_of``: activities strictly
before it, and never an activity type that sales logs after the hand-over. The same code
turns a 1-lead API request and a 100k-snapshot training set into identical numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from leadscore.config.params import FeatureParams
from leadscore.features.contract import KNOWN_LEAD_COLUMNS, PERSONAL_COLUMNS
from leadscore.features.engine import interest_ibis
from leadscore.features.personal import personal_columns, reason
from leadscore.features.spec import (
    DAY_US,
    NEVER_DAYS,
    FeatureSpec,
    decay_pairs,
    decay_table,
    decayed_counts_from,
    distinct_per_row,
    engagement_from,
    layout,
    micros,
    sales_rows,
)
from leadscore.features.titles import EMPLOYEE_BANDS, REVENUE_BANDS, band, job_function, region, seniority

# Identifiers and free text that describe no buying behaviour.
NOT_FEATURES = frozenset({"lead_id", "created_at", "company", "opportunity_id"}) | PERSONAL_COLUMNS


def _is_numeric_text(values: pd.Series) -> bool:
    present = values.dropna()
    if present.empty:
        return False
    if pd.api.types.is_bool_dtype(present) or present.map(lambda v: isinstance(v, bool)).any():
        return False
    return bool(pd.to_numeric(present, errors="coerce").notna().all())


def infer_spec(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    cfg: FeatureParams,
    *,
    max_activity_types: int = 40,
) -> FeatureSpec:
    """The feature layout for an export: activity vocabulary, profile columns and their types.

    Categories are not known yet; ``learn_categories`` adds them from leadscore.training rows.
    A name in ``cfg.exclude`` never becomes a feature: an export column with every feature made
    from it (``country`` takes ``region`` along), or one feature by its name. The spec records
    what was left out and why (``spec.excluded``); a name that is neither is a warning.
    """
    exclude = dict(cfg.exclude)
    sales = {t.lower() for t in cfg.sales_activity_types}
    marketing = ~sales_rows(activities["activity_type"], sales)
    counts = activities.loc[marketing, "activity_type"].value_counts()
    vocab = sorted(counts.index[:max_activity_types].tolist())
    channels: list[str] = []
    if "channel" in activities.columns:
        by_channel = activities.loc[marketing, "channel"].value_counts()
        channels = sorted(str(c) for c in by_channel.index[:max_activity_types])
    lead_columns = [c for c in KNOWN_LEAD_COLUMNS if c in leads.columns and c not in exclude]
    profile = {}
    # Personal data by header or by content ("kontakt" full of e-mail addresses): never a feature,
    # whatever column_types, exclude or --allow-leaky say.
    personal = personal_columns(leads, skip=NOT_FEATURES | set(KNOWN_LEAD_COLUMNS))
    for col in leads.columns:
        if col in NOT_FEATURES or col in KNOWN_LEAD_COLUMNS or col in exclude or col in personal:
            continue
        kind = cfg.column_types.get(col) or ("numeric" if _is_numeric_text(leads[col]) else "category")
        profile[col] = kind
    spec = FeatureSpec(
        activity_types=vocab,
        windows_days=sorted(cfg.windows_days),
        hand_raiser_types=[t.lower() for t in cfg.hand_raiser_types],
        sales_activity_types=sorted(sales),
        free_mail_domains=[d.lower() for d in cfg.free_mail_domains],
        competitor_domains=[d.lower() for d in cfg.competitor_domains],
        lead_columns=lead_columns,
        profile_columns=profile,
        engagement_half_life_days=float(cfg.engagement_half_life_days),
        engagement_weights={t: float(cfg.engagement_weights.get(t, 1.0)) for t in vocab},
        channels=channels,
    )
    spec.features = layout(spec)
    named = set(leads.columns) | set(spec.names)
    spec.features = [f for f in spec.features if f.name not in exclude]
    spec.excluded = {col: why for col, why in exclude.items() if col in named}
    spec.excluded.update({col: reason(kind, how) for col, (kind, how) in personal.items() if col not in spec.excluded})
    for col in exclude:
        if col not in named:
            warnings.warn(f"features.exclude: '{col}' is neither a column of the leads table nor a feature; "
                          "nothing was left out for it (a typo, or a column this export does not have?)",
                          ExcludeWarning, stacklevel=2)
    return spec


class ExcludeWarning(UserWarning):
    """A name in ``features.exclude`` that the export does not have."""


def email_domain(email: object) -> str | None:
    """The lower-cased part after the last "@" of an e-mail address, or None. Only the domain is
    ever looked at; the address itself goes nowhere."""
    return str(email).rsplit("@", 1)[-1].strip().lower() if isinstance(email, str) and "@" in email else None


def _email_domain(email: pd.Series) -> pd.Series:
    # object dtype: pandas 3 would make it ``str`` with NaN for None, and NaN is truthy.
    return pd.Series([email_domain(v) for v in email], index=email.index, dtype="object")


def _fit_features(profile: pd.DataFrame, spec: FeatureSpec) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    n = len(profile)

    def column(name: str) -> pd.Series:
        if name in profile.columns:
            return profile[name].reset_index(drop=True)
        return pd.Series([None] * n, dtype="object")

    for col, bands in (("employees", EMPLOYEE_BANDS), ("annual_revenue", REVENUE_BANDS)):
        out[col] = pd.to_numeric(column(col), errors="coerce").astype("float64")
        out[f"{col}_band"] = pd.Series([band(v, bands) for v in out[col].tolist()], dtype="object")
    for col in ("industry", "country", "lead_source"):
        out[col] = _levels(column(col), _as_level)
    out["region"] = _levels(column("country"), region)
    out["seniority"] = _levels(column("job_title"), seniority)
    out["job_function"] = _levels(column("job_title"), job_function)
    domain = _email_domain(column("email"))
    has = domain.notna()
    out["is_free_mail"] = domain.isin(spec.free_mail_domains).astype("float64").where(has)
    competitors = tuple(spec.competitor_domains)
    is_comp = domain.map(lambda d: bool(d) and (d in competitors or d.endswith(tuple("." + c for c in competitors))))
    out["is_competitor"] = is_comp.astype("float64").where(has)
    for col, kind in spec.profile_columns.items():
        values = column(col)
        out[col] = (
            pd.to_numeric(values, errors="coerce").astype("float64") if kind == "numeric" else _levels(values, _as_level)
        )
    return out


def _levels(values: pd.Series, to_level) -> pd.Series:
    """Category values as an object column of str/None, whatever dtype the source had."""
    return pd.Series([to_level(_as_level(v)) for v in values.tolist()], dtype="object")


def _as_level(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def marketing_activities(activities: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """``lead_id, occurred_us, activity_type, channel`` of the activities a feature may use (no sales types)."""
    acts = activities.loc[~sales_rows(activities["activity_type"], spec.sales_activity_types)]
    channel = acts["channel"] if "channel" in acts.columns else pd.Series(None, index=acts.index, dtype=object)
    return pd.DataFrame({
        "lead_id": acts["lead_id"].to_numpy(dtype=object),
        "occurred_us": micros(acts["occurred_at"]),
        "activity_type": acts["activity_type"].to_numpy(dtype=object),
        "channel": channel.astype(object).where(channel.notna(), None).to_numpy(dtype=object),
    })


def interest_numpy(lead_ids: np.ndarray, as_of_us: np.ndarray, acts: pd.DataFrame, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Interest features in process (numpy): the live path, and the reference for the engines."""
    n = len(lead_ids)
    keyed = pd.DataFrame({"sid": np.arange(n), "lead_id": lead_ids, "as_of_us": as_of_us})
    m = keyed.merge(acts, on="lead_id", how="inner")
    m = m.loc[m["occurred_us"].to_numpy() < m["as_of_us"].to_numpy()]
    sid = m["sid"].to_numpy(dtype=np.int64)
    age = m["as_of_us"].to_numpy(dtype=np.int64) - m["occurred_us"].to_numpy(dtype=np.int64)
    types = m["activity_type"].to_numpy(dtype=object)
    n_types = max(len(spec.activity_types), 1)
    type_idx = pd.Categorical(types, categories=spec.activity_types).codes.astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for w in spec.windows_days:
        in_window = age <= w * DAY_US
        known = in_window & (type_idx >= 0)
        matrix = np.bincount(sid[known] * n_types + type_idx[known], minlength=n * n_types).reshape(n, n_types)
        for j, t in enumerate(spec.activity_types):
            out[f"{t}_{w}d"] = matrix[:, j].astype("float64")
        out[f"activities_{w}d"] = np.bincount(sid[in_window], minlength=n).astype("float64")
    longest = spec.longest_window
    in_longest = age <= longest * DAY_US
    raised = in_longest & np.isin(types, spec.counted_hand_raisers)
    out[f"hand_raisers_{longest}d"] = np.bincount(sid[raised], minlength=n).astype("float64")
    known = in_longest & (type_idx >= 0)
    weight = decay_table(spec)[np.minimum(age // DAY_US, longest)]
    decayed = np.bincount(sid[known] * n_types + type_idx[known], weights=weight[known], minlength=n * n_types)
    out["engagement"] = engagement_from(decayed.reshape(n, n_types), spec)
    sums = {}
    for w, h in decay_pairs(spec):
        mask = (age <= w * DAY_US) & (type_idx >= 0)
        weight = decay_table(spec, h)[np.minimum(age // DAY_US, longest)]
        sums[(w, h)] = np.bincount(sid[mask] * n_types + type_idx[mask], weights=weight[mask],
                                   minlength=n * n_types).reshape(n, n_types)
    out |= decayed_counts_from(sums, spec)
    chan = pd.Categorical(m["channel"].to_numpy(dtype=object), categories=spec.channels).codes.astype(np.int64)
    out[f"channels_{longest}d"] = distinct_per_row(sid[in_longest], chan[in_longest], n)
    last, first = np.full(n, np.nan), np.full(n, np.nan)
    if len(sid):
        order = np.argsort(sid, kind="stable")
        s_sorted, a_sorted = sid[order], age[order]
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        last[s_sorted[starts]] = np.minimum.reduceat(a_sorted, starts) / DAY_US
        first[s_sorted[starts]] = np.maximum.reduceat(a_sorted, starts) / DAY_US
    out["days_since_last_activity"] = last
    out["days_since_first_activity"] = first
    unsub = types == "unsubscribe" if "unsubscribe" in spec.activity_types else np.zeros(len(types), dtype=bool)
    out["has_unsubscribed"] = (np.bincount(sid[unsub], minlength=n) > 0).astype("float64")
    bounce = types == "email_bounce" if "email_bounce" in spec.activity_types else np.zeros(len(types), dtype=bool)
    out["has_bounced"] = (np.bincount(sid[bounce], minlength=n) > 0).astype("float64")
    return out


ENGINES = ("numpy", "duckdb", "pyspark")


def _interest_features(
    snapshots: pd.DataFrame, created_at: pd.Series, activities: pd.DataFrame, spec: FeatureSpec, engine: str
) -> dict[str, pd.Series]:
    as_of_us = micros(snapshots["as_of"])
    lead_ids = snapshots["lead_id"].to_numpy(dtype=object)
    if engine == "numpy":
        values = interest_numpy(lead_ids, as_of_us, marketing_activities(activities, spec), spec)
    elif engine in ENGINES:
        values = interest_ibis(lead_ids, as_of_us, activities, spec, backend=engine)
    else:
        raise ValueError(f"features.engine: expected one of {', '.join(ENGINES)}, found {engine!r}")
    values["lead_age_days"] = (as_of_us - micros(created_at)) / DAY_US
    # A lead with no interaction yet: last activity "never" (worse than any real recency) and zero
    # days of history — values on the same scale, so the model's monotone constraints hold for the
    # first interaction too (a missing value could be routed anywhere).
    last, first = values["days_since_last_activity"], values["days_since_first_activity"]
    values["days_since_last_activity"] = np.where(np.isnan(last), NEVER_DAYS, last)
    values["days_since_first_activity"] = np.where(np.isnan(first), 0.0, first)
    # Recent vs earlier: this month's interactions against the monthly average of the two before
    # (from the window counts, so every engine agrees); negative when a lead is cooling down.
    if 30 in spec.windows_days and 90 in spec.windows_days:
        values["activity_trend"] = values["activities_30d"] - (values["activities_90d"] - values["activities_30d"]) / 2
    else:
        short, long_ = min(spec.windows_days), max(spec.windows_days)
        values["activity_trend"] = values[f"activities_{short}d"] / short - values[f"activities_{long_}d"] / long_
    return {name: pd.Series(v) for name, v in values.items()}


def compute_features(
    snapshots: pd.DataFrame, leads: pd.DataFrame, activities: pd.DataFrame, spec: FeatureSpec, engine: str = "numpy"
) -> pd.DataFrame:
    """Raw feature values (categories as text) for each (lead_id, as_of) row of ``snapshots``.

    ``engine`` runs the activity aggregation in process (``numpy``, the live path) or through Ibis
    on ``duckdb`` or ``pyspark``; all three give identical numbers.
    """
    # Fit features depend on the lead only: computed once per lead, then repeated per snapshot.
    codes, lead_ids = pd.factorize(snapshots["lead_id"].to_numpy(dtype=object))
    profile = leads.drop_duplicates("lead_id").set_index("lead_id").reindex(lead_ids)
    raw = {name: pd.Series(values.to_numpy()[codes], dtype=values.dtype) for name, values in _fit_features(profile, spec).items()}
    created_at = pd.Series(profile["created_at"].to_numpy()[codes])
    raw |= _interest_features(snapshots.reset_index(drop=True), created_at, activities, spec, engine)
    frame = pd.DataFrame({f.name: raw[f.name] for f in spec.features})
    frame.index = snapshots.index
    return frame


def learn_categories(spec: FeatureSpec, raw: pd.DataFrame, max_levels: int) -> FeatureSpec:
    """Fix each categorical feature's levels from leadscore.training rows: the most frequent ``max_levels``."""
    for f in spec.features:
        if f.kind == "category":
            counts = raw[f.name].dropna().astype(str).value_counts()
            f.categories = sorted(counts.index[:max_levels].tolist())
    return spec


def encode(raw: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Model-ready columns: floats, and categoricals with the training levels (unseen → missing)."""
    cols = {}
    for f in spec.features:
        if f.kind == "category":
            values = raw[f.name].astype("object").where(raw[f.name].notna(), None)
            cols[f.name] = pd.Categorical(values, categories=f.categories or [])
        else:
            cols[f.name] = raw[f.name].astype("float64")
    return pd.DataFrame(cols, index=raw.index)


def encode_matrix(raw: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The model matrix as float64: a category becomes its index in the training levels (NaN if
    unseen or missing) — exactly what LightGBM does with a pandas categorical, without the
    per-call cost of building one (what a single live request pays most for)."""
    out = np.empty((len(raw), len(spec.features)), dtype="float64")
    for j, f in enumerate(spec.features):
        col = raw[f.name]
        if f.kind == "category":
            index = {level: float(i) for i, level in enumerate(f.categories or [])}
            out[:, j] = [index.get(v, np.nan) if isinstance(v, str) else np.nan for v in col.tolist()]
        else:
            out[:, j] = col.to_numpy(dtype="float64", na_value=np.nan)
    return out


def build_features(
    snapshots: pd.DataFrame, leads: pd.DataFrame, activities: pd.DataFrame, spec: FeatureSpec
) -> pd.DataFrame:
    """Encoded features for ``snapshots``: exactly what the model sees, batch or online."""
    return encode(compute_features(snapshots, leads, activities, spec), spec)
