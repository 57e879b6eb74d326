"""What every scorer returns, so serving and evaluation never care which one answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from features.build import FeatureSpec, compute_features

ScorerName = Literal["model", "rules"]
GRADES = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Reason:
    """One reason behind a score: the business feature, its value, its effect and a sentence."""

    feature: str
    value: str | float | None
    effect: float
    text: str


@dataclass
class LeadScore:
    lead_id: str
    probability: float
    score: int
    grade: str
    reasons: list[Reason] = field(default_factory=list)
    scorer: ScorerName = "model"
    model_version: str | None = None
    fallback_reason: str | None = None


class Scorer(Protocol):
    """Anything that turns raw features into lead scores with reasons."""

    name: ScorerName
    version: str
    spec: FeatureSpec

    def score_frame(self, raw: pd.DataFrame, lead_ids: list[str], top_k: int = 3) -> list[LeadScore]: ...


def score_from_probability(p: np.ndarray) -> np.ndarray:
    """The 1–99 score: the probability in percent, never 0 or 100 (nothing is certain)."""
    return np.clip(np.rint(np.asarray(p, dtype="float64") * 100), 1, 99).astype(int)


def grade_from_cutoffs(values: np.ndarray, a: float, b: float, c: float) -> list[str]:
    v = np.asarray(values, dtype="float64")
    return np.where(v >= a, "A", np.where(v >= b, "B", np.where(v >= c, "C", "D"))).tolist()


def score_leads(
    scorer: Scorer,
    snapshots: pd.DataFrame,
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    top_k: int = 3,
    engine: str = "numpy",
) -> list[LeadScore]:
    """Score ``(lead_id, as_of)`` rows with any scorer: one feature definition for all paths."""
    raw = compute_features(snapshots, leads, activities, scorer.spec, engine=engine)
    return scorer.score_frame(raw, snapshots["lead_id"].astype(str).tolist(), top_k=top_k)


def display_value(value: object) -> str | float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)
