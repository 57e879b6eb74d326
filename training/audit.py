"""Leakage audit: look at every feature column for signs that it was written after the outcome.

Three checks, each a cheap statistic with a sentence of evidence:

- ``single_feature_auc``: the column alone ranks the label (AUC at or above ``auc_threshold``).
  Numeric columns: the AUC of the value (either direction; missing values tried at both ends),
  and of its quantile bins encoded out of fold, whichever is higher, so a sentinel or a
  middle band that leaks is not missed. Categorical columns: out-of-fold (5-fold) target-rate
  encoding, missing counted as a level, so an identifier with one level per row scores ~0.5
  instead of a trivial 1.0.
- ``filled_only_for_positives``: where the column has a value, nearly every row is a positive,
  though positives are a minority and most negatives have no value (columns of won deals
  joined onto every lead, e.g. Olist's closed-deal columns).
- ``dated_after_snapshot``: given the date each value was recorded (``times``) and each row's
  snapshot (``as_of``), values dated at or after the snapshot.
- ``named_like_sales_field``: the column's name has a word of a field that sales or the CRM
  writes about a lead once it is worked (status, stage, quality, tags, owner, outcome, won …)
  *and* the column carries signal (single-feature AUC at or above ``name_auc_threshold``).
- ``identifier``: (nearly) every lead with a value holds a value no other lead has — an id, a
  phone number, an e-mail address under a header the contract does not know, free text. Not a
  leak but personal data or noise: never a feature. Text columns count from
  ``identifier_share`` on; numbers only when they are whole and no two leads share one (an id),
  so honest amounts, counts and durations pass; dates are left to ``dated_after_snapshot``.

Folds are grouped by lead when ``groups`` (lead ids) are given: an event export has a snapshot
of each lead every week, and per-row folds would put a lead's other snapshots, with its label,
in the training folds of each one, so a column unique per lead would "rank the label" almost
perfectly. Every threshold defaults to the packaged params.yaml (``audit:``).

Why a name check: a statistic cannot tell a leak from a strong honest feature of the same
strength. X Education's ``Lead Quality`` ("the intuition of the employee who has been assigned
to the lead") ranks the label with AUC ~0.80 alone and ~0.85 where it is filled; the honest
``Total Time Spent on Website`` reaches 0.76 alone and adds more to a model of the other
columns than Lead Quality does. Only its meaning gives it away, and a column's name is the
meaning the audit can read. The dataset spec's ``drop`` list, with a reason per column, stays
the first line of defence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

import re

from leadscore.config.params import default_params
from leadscore.features.contract import parse_timestamps

Check = Literal[
    "single_feature_auc", "filled_only_for_positives", "dated_after_snapshot", "named_like_sales_field", "identifier",
]
# Words (whole words of a column name, any case) of fields written after a lead is worked.
SALES_FIELD_WORDS: tuple[str, ...] = (
    "status", "stage", "quality", "tag", "tags", "rating", "score", "grade", "owner", "assigned",
    "outcome", "result", "reason", "won", "lost", "closed", "converted", "disposition", "deal",
)
FOLDS = 5
NUMERIC_BINS = 20
SEED = 0
# "Filled only for positives" needs positives to be a minority, and enough filled rows to mean anything.
FILL_MAX_BASE_RATE = 0.5
FILL_MIN_ROWS = 10
# Text whose values parse as timestamps this often holds dates, not identifiers.
DATE_SHARE = 0.95
DATE_SAMPLE = 1000
# How to drop a flagged column, when the caller does not say which kind of export it audits.
DROP_HOW = ("list them with a reason: `features.exclude` in params.yaml (event export) or the spec's "
            "`drop:` with a `why` (flat export)")


@dataclass(frozen=True)
class Finding:
    """One reason to suspect a column: which column, which check, and the numbers behind it."""

    column: str
    check: Check
    evidence: str

    def __str__(self) -> str:
        return f"{self.column} [{self.check}]: {self.evidence}"


@dataclass
class AuditResult:
    """Every finding of an audit; ``passed`` when there are none."""

    findings: list[Finding]
    checked: int
    single_feature_auc: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    drop_how: str = DROP_HOW  # where a user leaves a column out, for LeakageError's last line

    @property
    def passed(self) -> bool:
        return not self.findings

    def columns(self, check: Check | None = None) -> set[str]:
        """The flagged columns, optionally for one check only."""
        return {f.column for f in self.findings if check is None or f.check == check}

    def to_dict(self) -> dict:
        """JSON-ready, e.g. for ``mlflow.log_dict(result.to_dict(), "leakage_audit.json")``."""
        return {
            "passed": self.passed,
            "checked": self.checked,
            "thresholds": dict(self.thresholds),
            "findings": [asdict(f) for f in self.findings],
            "single_feature_auc": {k: round(v, 4) for k, v in self.single_feature_auc.items()},
        }


class LeakageError(ValueError):
    """The audit found columns that look leaky; the message lists every finding."""

    def __init__(self, result: AuditResult):
        self.result = result
        lines = [f"leakage audit: {len(result.findings)} finding(s) in {result.checked} columns"]
        lines += [f"  - {f}" for f in result.findings]
        lines.append(f"to leave them out, {result.drop_how}; or pass --allow-leaky (allow_leaky=True) to keep them knowingly")
        super().__init__("\n".join(lines))


def raise_if_leaky(result: AuditResult, allow_leaky: bool = False) -> AuditResult:
    """Raise ``LeakageError`` listing every finding, unless there is none or ``allow_leaky``."""
    if not result.passed and not allow_leaky:
        raise LeakageError(result)
    return result


def audit_features(
    features: pd.DataFrame,
    label: pd.Series,
    *,
    times: pd.DataFrame | None = None,
    as_of: pd.Series | None = None,
    groups: pd.Series | np.ndarray | None = None,
    auc_threshold: float | None = None,
    fill_threshold: float | None = None,
    name_words: tuple[str, ...] | list[str] | None = None,
    name_auc_threshold: float | None = None,
    identifier_share: float | None = None,
    identifier_min_rows: int | None = None,
    drop_how: str = DROP_HOW,
) -> AuditResult:
    """Check every column of ``features`` against the 0/1 ``label`` (same rows, same order).

    ``groups`` (e.g. the lead id of each snapshot) keeps all rows of a group in one fold of the
    out-of-fold encodings, and makes the identifier check count groups, not rows; without it
    every row is its own group (a flat export, one row per lead).
    ``times`` holds, per feature column (same name), when each value was recorded; with
    ``as_of`` (each row's snapshot) any value dated at or after its snapshot is a finding.
    ``name_words`` (default ``SALES_FIELD_WORDS``) are the words that make a column with a
    single-feature AUC of ``name_auc_threshold`` or more suspicious. A threshold not given is the
    packaged params.yaml's (``audit:``). ``drop_how`` ends a ``LeakageError``: where this kind of
    export leaves a column out. Pure: nothing is logged or written.
    """
    shipped = default_params().audit
    auc_threshold = shipped.auc_threshold if auc_threshold is None else auc_threshold
    fill_threshold = shipped.fill_threshold if fill_threshold is None else fill_threshold
    name_auc_threshold = shipped.name_auc_threshold if name_auc_threshold is None else name_auc_threshold
    identifier_share = shipped.identifier_share if identifier_share is None else identifier_share
    identifier_min_rows = shipped.identifier_min_rows if identifier_min_rows is None else identifier_min_rows
    words = {w.lower() for w in (SALES_FIELD_WORDS if name_words is None else name_words)}
    y = _binary(label, len(features))
    if (times is None) != (as_of is None):
        raise ValueError("give both times and as_of, or neither")
    group_codes = _group_codes(groups, len(features))
    folds = _folds(y, group_codes)
    findings: list[Finding] = []
    aucs: dict[str, float] = {}
    for col in features.columns:
        values = features[col]
        ident = _identifier(values, group_codes, identifier_share, identifier_min_rows, grouped=groups is not None)
        if ident:
            findings.append(Finding(str(col), "identifier", ident))
        auc, how = _single_auc(values, y, folds)
        aucs[str(col)] = auc
        if auc >= auc_threshold:
            findings.append(Finding(
                str(col), "single_feature_auc",
                f"alone it ranks the label with AUC {auc:.3f} (threshold {auc_threshold:.2f}); {how}",
            ))
        elif auc >= name_auc_threshold and (hit := _sales_word(str(col), words)):
            findings.append(Finding(
                str(col), "named_like_sales_field",
                f"its name has '{hit}', like a field sales or the CRM fills in once a lead is worked, and it "
                f"carries signal: alone it ranks the label with AUC {auc:.3f} (threshold for such names "
                f"{name_auc_threshold:.2f}){_where_filled(values, y, group_codes)}",
            ))
        fill = _filled_only_for_positives(values, y, fill_threshold)
        if fill:
            findings.append(Finding(str(col), "filled_only_for_positives", fill))
    if times is not None:
        findings += _dated_after(features, times, as_of)
    return AuditResult(
        findings=findings,
        checked=features.shape[1],
        single_feature_auc=aucs,
        thresholds={"auc": auc_threshold, "fill": fill_threshold, "name_auc": name_auc_threshold,
                    "identifier_share": identifier_share, "identifier_min_rows": identifier_min_rows},
        drop_how=drop_how,
    )


def _group_codes(groups: pd.Series | np.ndarray | None, n: int) -> np.ndarray:
    """One integer per row naming its group; every row its own group when ``groups`` is None."""
    if groups is None:
        return np.arange(n, dtype=np.int64)
    values = pd.Series(np.asarray(groups, dtype=object))
    if len(values) != n:
        raise ValueError(f"groups has {len(values)} rows, features {n}")
    if values.isna().any():
        raise ValueError(f"groups has {int(values.isna().sum())} missing values")
    return pd.factorize(values)[0].astype(np.int64)


def _identifier(values: pd.Series, groups: np.ndarray, share_min: float, min_rows: int, *, grouped: bool) -> str | None:
    """Evidence that the column names its leads rather than describes them, or None.

    Counted per group (lead): the leads with a value, and how many of them hold a value no other
    lead holds. Text needs ``share_min`` of them; a number must be whole and shared by no two
    leads (an id, a phone number stored as a number), so that amounts, counts and durations —
    honest, and often near-unique — pass. Booleans, datetimes and text that reads as dates pass.
    """
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return None
    filled = values.notna().to_numpy()
    if int(filled.sum()) < min_rows:
        return None
    numeric = pd.api.types.is_numeric_dtype(values)
    present = values[filled]
    if numeric:
        x = present.to_numpy(dtype="float64")
        if not np.all(np.isfinite(x) & (x == np.round(x))):
            return None
        keys = pd.Series(x)
        need = 1.0
    else:
        keys = pd.Series(present.astype(str).to_numpy(dtype=object))
        sample = keys.drop_duplicates().head(DATE_SAMPLE)
        if parse_timestamps(sample).notna().mean() >= DATE_SHARE:
            return None
        need = share_min
    pairs = pd.DataFrame({"group": groups[filled], "value": keys.to_numpy()}).drop_duplicates()
    n_groups = int(pairs["group"].nunique())
    if n_groups < min_rows:
        return None
    leads_per_value = pairs.groupby("value", sort=False)["group"].size()
    alone = leads_per_value.index[leads_per_value.to_numpy() == 1]
    # Leads whose every value is theirs alone.
    only_theirs = pairs.assign(alone=pairs["value"].isin(alone)).groupby("group")["alone"].all()
    n_alone = int(only_theirs.sum())
    share = n_alone / n_groups
    if share < need:
        return None
    unit = "leads" if grouped else "rows"
    kind = "whole numbers" if numeric else "distinct values"
    return (
        f"looks like an identifier or personal data: {len(leads_per_value):,} {kind} in {n_groups:,} {unit} with a "
        f"value, {n_alone:,} ({share:.1%}) held by no other {unit[:-1]} (threshold {need:.0%}) — an id, phone number, "
        "e-mail address or free text is never a feature; drop it"
    )


def _sales_word(name: str, words: set[str]) -> str | None:
    """The first word of ``name`` (split at non-letters and camelCase) that is in ``words``."""
    tokens = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)
    return next((t.lower() for t in tokens if t.lower() in words), None)


def _where_filled(values: pd.Series, y: np.ndarray, groups: np.ndarray) -> str:
    """'; where filled (n rows) AUC x' when the column is partly missing and both classes have values."""
    filled = values.notna().to_numpy()
    if filled.all() or not 0 < y[filled].sum() < filled.sum() or filled.sum() < FILL_MIN_ROWS:
        return ""
    auc, _ = _single_auc(values[filled].reset_index(drop=True), y[filled], _folds(y[filled], groups[filled]))
    return f"; on the {int(filled.sum()):,} rows where it is filled, AUC {auc:.3f}"


def _binary(label: pd.Series, n: int) -> np.ndarray:
    y = pd.Series(label)
    if len(y) != n:
        raise ValueError(f"label has {len(y)} rows, features {n}")
    if y.isna().any():
        raise ValueError(f"label has {int(y.isna().sum())} missing values")
    values = y.astype("int64").to_numpy() if not pd.api.types.is_bool_dtype(y) else y.to_numpy().astype(np.int64)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"label must be 0/1, found values {sorted(set(values.tolist()))[:5]}")
    if values.min() == values.max():
        raise ValueError(f"label has one class only ({values[0]}); no check can be computed")
    return values


def _folds(y: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """A fold number per row, reproducible: every row of a group (lead) in the same fold, groups
    stratified by their label (positive if any of their rows is). Without groups, one per row."""
    if groups is None:
        groups = np.arange(len(y), dtype=np.int64)
    codes, uniques = pd.factorize(groups)
    group_y = np.zeros(len(uniques), dtype=np.int64)
    np.maximum.at(group_y, codes, y)
    rng = np.random.default_rng(SEED)
    group_fold = np.empty(len(uniques), dtype=np.int64)
    for cls in (0, 1):
        idx = np.flatnonzero(group_y == cls)
        group_fold[rng.permutation(idx)] = np.arange(len(idx)) % FOLDS
    return group_fold[codes]


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney), ties counted half."""
    ranks = rankdata(score)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _oof_target_rate(codes: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each row's level encoded by the positive rate of that level in the other folds (smoothed to the prior)."""
    k = int(codes.max()) + 1
    out = np.empty(len(y))
    for f in range(FOLDS):
        test = folds == f
        train = ~test
        n = np.bincount(codes[train], minlength=k)
        pos = np.bincount(codes[train], weights=y[train], minlength=k)
        prior = y[train].mean()
        out[test] = ((pos + prior) / (n + 1))[codes[test]]
    return out


def _single_auc(values: pd.Series, y: np.ndarray, folds: np.ndarray) -> tuple[float, str]:
    """The best AUC the column reaches alone, and how it was measured."""
    missing = values.isna().to_numpy()
    n_missing = int(missing.sum())
    if n_missing == len(values):
        return 0.5, "every value is missing"
    is_numeric = (
        pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    ) or pd.api.types.is_datetime64_any_dtype(values)
    if not is_numeric:
        codes, levels = pd.factorize(values, use_na_sentinel=True)
        codes = np.where(codes < 0, len(levels), codes)
        auc = _auc(_oof_target_rate(codes, y, folds), y)
        na = f" plus missing ({n_missing} rows)" if n_missing else ""
        return auc, f"categorical, {len(levels)} levels{na}, {FOLDS}-fold out-of-fold target rate"

    x = _as_float(values)
    finite = x[~missing]
    best, how = 0.5, ""
    for place, fill in (("lowest", -np.inf), ("highest", np.inf)):
        auc = _auc(np.where(missing, fill, x), y)
        for a, direction in ((auc, "higher"), (1 - auc, "lower")):
            if a > best:
                na = f", the {n_missing} missing values ranked {place}" if n_missing else ""
                best, how = a, f"numeric, {direction} values mean positive{na}"
        if not n_missing:
            break
    # Quantile bins (missing as its own bin) encoded out of fold: catches a leak in a middle band.
    ranks = rankdata(finite, method="dense")
    n_levels = int(ranks.max())
    codes = np.full(len(x), -1, dtype=np.int64)
    codes[~missing] = ranks - 1 if n_levels <= NUMERIC_BINS else np.floor(
        (rankdata(finite, method="average") - 1) / len(finite) * NUMERIC_BINS
    ).astype(np.int64)
    codes[missing] = codes.max() + 1
    binned = _oof_target_rate(codes, y, folds)
    auc = _auc(binned, y)
    if auc > best:
        na = " plus missing" if n_missing else ""
        bins = f"{n_levels} values" if n_levels <= NUMERIC_BINS else f"{NUMERIC_BINS} quantile bins"
        best, how = auc, f"numeric, {bins}{na} as levels, {FOLDS}-fold out-of-fold target rate"
    return best, how


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers as float64 with NaN for missing; datetimes as their position on the time line."""
    if pd.api.types.is_datetime64_any_dtype(values):
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert(None)
        stamps = values.to_numpy()
        x = stamps.astype("int64").astype("float64")
        x[pd.isna(stamps)] = np.nan
        return x
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _filled_only_for_positives(values: pd.Series, y: np.ndarray, fill_threshold: float) -> str | None:
    filled = values.notna().to_numpy()
    n_filled = int(filled.sum())
    if n_filled < FILL_MIN_ROWS or n_filled == len(y):
        return None
    base = y.mean()
    pos_filled = int(y[filled].sum())
    share = pos_filled / n_filled
    neg = y == 0
    neg_missing = float((~filled[neg]).mean())
    if share >= fill_threshold and base < FILL_MAX_BASE_RATE and neg_missing > 0.5:
        return (
            f"has a value in {n_filled:,} of {len(y):,} rows and {pos_filled:,} of them ({share:.1%}) are positive, "
            f"against {base:.1%} positive overall; it is missing for {neg_missing:.1%} of the {int(neg.sum()):,} negatives"
        )
    return None


def _dated_after(features: pd.DataFrame, times: pd.DataFrame, as_of: pd.Series) -> list[Finding]:
    if len(times) != len(features) or len(as_of) != len(features):
        raise ValueError(f"times ({len(times)}) and as_of ({len(as_of)}) must have the {len(features)} rows of features")
    unknown = [c for c in times.columns if c not in features.columns]
    if unknown:
        raise ValueError(f"times has columns that are not features: {unknown}")
    snap = pd.to_datetime(pd.Series(as_of)).to_numpy()
    findings = []
    for col in times.columns:
        stamp = pd.to_datetime(times[col]).to_numpy()
        known = ~pd.isna(stamp) & ~pd.isna(snap)
        late = known & (stamp >= snap)
        n_late = int(late.sum())
        if n_late:
            lag = pd.Series(stamp[late] - snap[late])
            findings.append(Finding(
                str(col), "dated_after_snapshot",
                f"{n_late:,} of {int(known.sum()):,} dated values ({n_late / known.sum():.1%}) are recorded at or after "
                f"the row's snapshot, by a median of {lag.median().days} days (up to {lag.max().days} days)",
            ))
    return findings
