"""What every scorer answers, and how a probability becomes a score, a grade and a next step.

The bottom of ``models``: the answer types (``LeadScore``, ``Reason``, ``Matrix``, ``WhatIf``) and
the decision rules every scorer, the what-if search, serving and the reports share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from leadscore.features.catalog import Lang

ScorerName = Literal["model", "rules"]
GRADES = ("A", "B", "C", "D")
# The 4-field matrix (DOMAIN.md): fit grade A/B is high fit, interest level 1/2 is high interest.
RECOMMENDATIONS: dict[tuple[bool, bool], tuple[str, str, str]] = {
    (True, True): ("hand_to_sales", "Ready: hand to sales", "Bereit: an den Vertrieb übergeben"),
    (True, False): ("keep_nurturing", "Good fit, little interest yet: keep nurturing",
                    "Passt gut, noch wenig Interesse: weiter pflegen"),
    (False, True): ("nurture_as_recommender", "Interested but a poor fit: unlikely to buy, nurture as a recommender",
                    "Interessiert, passt aber schlecht: kauft kaum, als Empfehlungsgeber pflegen"),
    (False, False): ("no_further_attention", "Poor fit, little interest: no further attention for now",
                     "Passt schlecht, wenig Interesse: vorerst keine weitere Betreuung"),
}


@dataclass(frozen=True)
class Reason:
    """One reason behind a score: the business feature (signal), its value, its effect (log-odds
    for the model, points for the rules), a sentence in the requested language, and its group."""

    feature: str
    value: str | float | None
    effect: float
    text: str
    group: str | None = None


@dataclass(frozen=True)
class Matrix:
    """Where the lead sits in the fit × interest grid, and what that means for the next step.

    The recommendation is advice for people; no code path disqualifies a lead because of it."""

    fit_grade: str
    interest_level: int
    fit_effect: float
    interest_effect: float
    recommendation: str
    recommendation_text: str

    @property
    def cell(self) -> str:
        return f"{self.fit_grade}{self.interest_level}"


def matrix(fit_grade: str, interest_level: int, fit_effect: float, interest_effect: float, lang: Lang = "en") -> Matrix:
    code, en, de = RECOMMENDATIONS[(fit_grade in ("A", "B"), interest_level in (1, 2))]
    return Matrix(fit_grade, interest_level, fit_effect, interest_effect, code, de if lang == "de" else en)


def level_from_cutoffs(value: float, cutoffs: list[float]) -> int:
    """1 for values at or above cutoffs[0], 2 at or above cutoffs[1], …, len(cutoffs)+1 below all."""
    for i, cut in enumerate(cutoffs):
        if value >= cut:
            return i + 1
    return len(cutoffs) + 1


@dataclass(frozen=True)
class Lever:
    """One thing marketing or the rep can do, and what the scorer says it alone would reach.

    ``kind`` "action": one more activity of type ``name`` (marketing or the lead); "confirm": the
    rep confirms the profile field ``name`` as ``value`` in a call (BANT). Never a fixed fact."""

    kind: Literal["action", "confirm"]
    name: str
    text: str
    probability: float
    score: int
    grade: str
    value: str | None = None


@dataclass(frozen=True)
class WhatIf:
    """What would change a lead, per the scorer: the levers one at a time (best first), and the
    smallest set of actions that lifts it over the sales threshold — ``actions``, ``text``,
    ``probability``, ``score`` and ``grade`` are that set's, empty / None when no set does."""

    actions: dict[str, int]
    text: str | None
    probability: float | None
    score: int | None
    levers: list[Lever] = field(default_factory=list)
    grade: str | None = None


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
    matrix: Matrix | None = None
    sales_ready: bool = False
    what_if: WhatIf | None = None


def score_from_probability(p: np.ndarray) -> np.ndarray:
    """The 1–99 score: the probability in percent, never 0 or 100 (nothing is certain)."""
    return np.clip(np.rint(np.asarray(p, dtype="float64") * 100), 1, 99).astype(int)


def grade_from_cutoffs(values: np.ndarray, a: float, b: float, c: float) -> list[str]:
    v = np.asarray(values, dtype="float64")
    return np.where(v >= a, "A", np.where(v >= b, "B", np.where(v >= c, "C", "D"))).tolist()


def display_value(value: object) -> str | float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)
