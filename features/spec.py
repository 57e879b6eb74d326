"""What a trained model expects (the feature spec and its layout), and the time and decay
arithmetic that every feature engine shares: the batch path (``build``), the Ibis engines
(``engine``) and the live path (``online``) all import it from here, so none imports another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from leadscore.features.catalog import LANGS, label

Group = Literal["fit", "interest"]
Kind = Literal["numeric", "category"]

# Sales logs these after the hand-over, so they never feed a feature: the types listed in
# ``features.sales_activity_types`` and any type named ``sales_…``. The importer names a value it
# does not know from a sales-logged source (a Salesforce Task, a Dynamics phone call) so; this is
# the one rule every path (features, SLA report, attribution, serving) asks.
SALES_PREFIX = "sales_"


def is_sales_type(kind: object, listed) -> bool:
    """Whether sales logs activities of type ``kind`` (listed, or named ``sales_…``)."""
    return kind in listed or (isinstance(kind, str) and kind.startswith(SALES_PREFIX))


def sales_rows(types: pd.Series, listed) -> pd.Series:
    """``is_sales_type`` for a column of activity types: True where sales logged the row."""
    named = types.astype("string").str.startswith(SALES_PREFIX).fillna(False).astype(bool)
    return types.isin(list(listed)) | named

@dataclass
class FeatureDef:
    """A model input: its name, whether it is fit or interest, and its type (with categories)."""

    name: str
    group: Group
    kind: Kind
    categories: list[str] | None = None
    label: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = {lang: label(self.name, lang) for lang in LANGS}


@dataclass
class FeatureSpec:
    """What a trained model expects, learned from its training data (``fit``) and stored with it."""

    activity_types: list[str]
    windows_days: list[int]
    hand_raiser_types: list[str]
    sales_activity_types: list[str]
    free_mail_domains: list[str]
    competitor_domains: list[str]
    lead_columns: list[str]
    profile_columns: dict[str, Kind]
    features: list[FeatureDef] = field(default_factory=list)
    # Added after the first models were stored: defaults keep those loadable (their layout has no
    # engagement or channel feature, so the values are never used for them).
    engagement_half_life_days: float = 14.0
    engagement_weights: dict[str, float] = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    # Decayed counts [activity type, window days, half-life days] that a consumer asks for (the SLA
    # rules' "points per action, halved every N days"); the model's own layout asks for none.
    decayed_counts: list[list] = field(default_factory=list)
    # Columns (or features) left out on request (params ``features.exclude``), each with its reason:
    # the model card says what the model was not allowed to see, and why.
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def longest_window(self) -> int:
        return max(self.windows_days)

    def engagement_weight(self, activity_type: str) -> float:
        return float(self.engagement_weights.get(activity_type, 1.0))

    @property
    def counted_hand_raisers(self) -> list[str]:
        """Hand-raiser types that count: those in the vocabulary (a type too rare to learn is noise)."""
        return [t for t in self.hand_raiser_types if t in self.activity_types]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        data = dict(data)
        data["features"] = [FeatureDef(**f) for f in data.get("features", [])]
        return cls(**data)


def layout(spec: FeatureSpec) -> list[FeatureDef]:
    """Every model input a spec implies, fit first, in the order the model sees them."""
    fit: list[FeatureDef] = []
    cols = set(spec.lead_columns)
    for col in ("employees", "annual_revenue"):
        if col in cols:
            fit += [FeatureDef(col, "fit", "numeric"), FeatureDef(f"{col}_band", "fit", "category")]
    for col in ("industry", "country", "lead_source"):
        if col in cols:
            fit.append(FeatureDef(col, "fit", "category"))
    if "country" in cols:
        fit.append(FeatureDef("region", "fit", "category"))
    if "job_title" in cols:
        fit += [FeatureDef("seniority", "fit", "category"), FeatureDef("job_function", "fit", "category")]
    if "email" in cols:
        fit += [FeatureDef("is_free_mail", "fit", "numeric"), FeatureDef("is_competitor", "fit", "numeric")]
    fit += [FeatureDef(col, "fit", kind) for col, kind in spec.profile_columns.items()]
    interest = [FeatureDef("lead_age_days", "interest", "numeric")]
    for w in spec.windows_days:
        interest += [FeatureDef(f"{t}_{w}d", "interest", "numeric") for t in spec.activity_types]
        interest.append(FeatureDef(f"activities_{w}d", "interest", "numeric"))
    interest += [
        FeatureDef(f"hand_raisers_{spec.longest_window}d", "interest", "numeric"),
        FeatureDef("activity_trend", "interest", "numeric"),
        FeatureDef("engagement", "interest", "numeric"),
        FeatureDef("days_since_last_activity", "interest", "numeric"),
        FeatureDef("days_since_first_activity", "interest", "numeric"),
        FeatureDef("has_unsubscribed", "interest", "numeric"),
        FeatureDef("has_bounced", "interest", "numeric"),
    ]
    if spec.channels:
        interest.append(FeatureDef(f"channels_{spec.longest_window}d", "interest", "numeric"))
    too_long = [d for d in spec.decayed_counts if int(d[1]) > spec.longest_window]
    if too_long:
        raise ValueError(f"decayed counts may not reach past the longest window ({spec.longest_window} days): {too_long}")
    interest += [FeatureDef(decayed_name(t, w, h), "interest", "numeric") for t, w, h in spec.decayed_counts]
    return fit + interest


DAY_US = 86_400_000_000  # ages are whole microseconds, so every engine computes the same floats
NEVER_DAYS = 3650.0  # days since the last activity of a lead that has none


def micros(values: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch."""
    return np.asarray(values, dtype="datetime64[ns]").astype("int64") // 1000



# Engagement weights are whole millionths per day of age, summed as integers: every engine and
# every batch size adds the same numbers in any order and gets the same result.
ENGAGEMENT_SCALE = 1_000_000


def decay_table(spec: FeatureSpec, half_life_days: float | None = None) -> np.ndarray:
    """Integer weight of an interaction ``d`` whole days old, for d = 0 … longest window (half-life:
    the engagement one unless given)."""
    days = np.arange(spec.longest_window + 1, dtype="float64")
    half_life = spec.engagement_half_life_days if half_life_days is None else half_life_days
    return np.floor(np.power(0.5, days / half_life) * ENGAGEMENT_SCALE + 0.5).astype(np.int64)


def decayed_name(activity_type: str, window_days: int, half_life_days: float) -> str:
    """``pricing_page_view_30d_hl14``: interactions of one type in a window, each halved every 14 days."""
    return f"{activity_type}_{int(window_days)}d_hl{half_life_days:g}"


def decay_pairs(spec: FeatureSpec) -> list[tuple[int, float]]:
    """The distinct (window, half-life) pairs of the decayed counts asked for."""
    return sorted({(int(w), float(h)) for _, w, h in spec.decayed_counts})


def decayed_counts_from(sums: dict[tuple[int, float], np.ndarray], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Decayed-count features from per-(row, type) integer sums for each (window, half-life)."""
    out = {}
    for t, w, h in spec.decayed_counts:
        j = spec.activity_types.index(t) if t in spec.activity_types else None
        values = sums[(int(w), float(h))]
        out[decayed_name(t, w, h)] = values[:, j] / ENGAGEMENT_SCALE if j is not None else np.zeros(values.shape[0])
    return out


def engagement_from(decayed: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Engagement from the per-(row, type) sums of ``decay_table`` weights: the type weights applied
    column by column (no BLAS, whose summation order may depend on the number of rows)."""
    out = np.zeros(decayed.shape[0])
    for j, t in enumerate(spec.activity_types):
        out += decayed[:, j] * spec.engagement_weight(t)
    return out / ENGAGEMENT_SCALE


def distinct_per_row(rows: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """How many distinct non-negative ``codes`` each of ``n`` rows has."""
    keep = codes >= 0
    width = int(codes.max()) + 1 if keep.any() else 1
    seen = np.zeros(n * width, dtype=bool)  # codes are a small vocabulary: a presence matrix beats sorting
    seen[rows[keep].astype(np.int64) * width + codes[keep]] = True
    return seen.reshape(n, width).sum(axis=1).astype("float64")
