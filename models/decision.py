"""What every scorer answers, and the one decision a lead gets: probability → score → grade →
sales-ready → recommendation.

The bottom of ``models``: the answer types (``LeadScore``, ``Reason``, ``Matrix``, ``WhatIf``) and
``decide``, which every scorer, the what-if search, serving, the lead card and the reports call.

**The decision.** Grade A from cut-off ``a``, B from ``b``, C from ``c``, D below. ``b`` *is* the
sales (SQL) threshold: a lead is sales-ready if and only if its grade is A or B (and no
negative-persona exclusion fired). ``hand_to_sales`` is recommended if and only if the lead is
sales-ready; below the threshold the fit × interest quadrant picks the next step: high fit → keep
nurturing, low fit but interested → nurture as a recommender, low fit and little interest → no
further attention for now. The quadrant explains the answer; it never overrides the threshold.

**The tie rule.** Cut-offs are stored as the values they came from (calibrated probabilities for
the model, points for the rules), never rounded. A value counts as *at* a cut-off when it lies
within ``TIE_TOLERANCE`` (relative, at least absolute for values below 1) of it: a probability
that comes back 1 ulp (or 3e-17) below its cut-off after a float round trip keeps its grade.
``training.thresholds`` chooses cut-offs so that no two training values it separates lie within
the tolerance of each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from leadscore.features.catalog import Lang

ScorerName = Literal["model", "rules"]
GRADES = ("A", "B", "C", "D")


def grades_seen(values) -> list[str]:
    """The grades among ``values`` in report order: A–D as seen, then any other grade (sorted)."""
    seen = {str(v) for v in values if v is not None and v == v}
    return [g for g in GRADES if g in seen] + sorted(seen - set(GRADES))


SALES_READY_GRADES = ("A", "B")
# Effects are shown to two decimals (log-odds) or one (points): a reason whose effect rounds to
# zero there is not shown; it would say "+0.00".
EFFECT_DECIMALS = 2
# Relative width of a tie: |value - cut-off| ≤ TIE_TOLERANCE · max(1, |cut-off|) counts as at it.
TIE_TOLERANCE = 1e-9
Recommendation = Literal["hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention"]
RECOMMENDATION_CODES: tuple[Recommendation, ...] = (
    "hand_to_sales", "keep_nurturing", "nurture_as_recommender", "no_further_attention")
# (sales_ready, high fit, high interest) → (code, en, de). The fit × interest matrix (DOMAIN.md):
# fit grade A/B is high fit, interest level 1/2 is high interest. None: the scorer has no matrix.
RECOMMENDATIONS: dict[tuple[bool, bool | None, bool | None], tuple[Recommendation, str, str]] = {
    (True, True, True): ("hand_to_sales", "Sales-ready: good fit and strong interest, hand to sales",
                         "Vertriebsbereit: passt gut und zeigt starkes Interesse, an den Vertrieb übergeben"),
    (True, True, False): ("hand_to_sales", "Sales-ready on the overall score: good fit, interest still low; hand to sales",
                          "Vertriebsbereit nach Gesamtwertung: passt gut, Interesse noch gering; an den Vertrieb übergeben"),
    (True, False, True): ("hand_to_sales", "Sales-ready on the overall score: strong interest, weaker fit; hand to sales "
                          "and check the fit in the first call",
                          "Vertriebsbereit nach Gesamtwertung: starkes Interesse, schwächere Passung; an den Vertrieb "
                          "übergeben und die Passung im Erstgespräch prüfen"),
    (True, False, False): ("hand_to_sales", "Sales-ready on the overall score: hand to sales",
                           "Vertriebsbereit nach Gesamtwertung: an den Vertrieb übergeben"),
    (True, None, None): ("hand_to_sales", "Sales-ready: hand to sales", "Vertriebsbereit: an den Vertrieb übergeben"),
    (False, True, True): ("keep_nurturing", "Good fit and interested, but not yet sales-ready: keep nurturing",
                          "Passt gut und ist interessiert, aber noch nicht vertriebsbereit: weiter pflegen"),
    (False, True, False): ("keep_nurturing", "Good fit, little interest yet: keep nurturing",
                           "Passt gut, noch wenig Interesse: weiter pflegen"),
    (False, False, True): ("nurture_as_recommender", "Interested but a poor fit: unlikely to buy, nurture as a recommender",
                           "Interessiert, passt aber schlecht: kauft kaum, als Empfehlungsgeber pflegen"),
    (False, False, False): ("no_further_attention", "Poor fit, little interest: no further attention for now",
                            "Passt schlecht, wenig Interesse: vorerst keine weitere Betreuung"),
    (False, None, None): ("keep_nurturing", "Not yet sales-ready: keep nurturing", "Noch nicht vertriebsbereit: weiter pflegen"),
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
    """Where the lead sits in the fit × interest grid: the explanation of the recommendation."""

    fit_grade: str
    interest_level: int
    fit_effect: float
    interest_effect: float

    @property
    def cell(self) -> str:
        return f"{self.fit_grade}{self.interest_level}"

    @property
    def high_fit(self) -> bool:
        return self.fit_grade in SALES_READY_GRADES

    @property
    def high_interest(self) -> bool:
        return self.interest_level in (1, 2)


def matrix(fit_grade: str, interest_level: int, fit_effect: float, interest_effect: float) -> Matrix:
    return Matrix(fit_grade, interest_level, fit_effect, interest_effect)


def shown(effect: float) -> bool:
    """Whether a reason's effect is visible at the precision it is shown with."""
    return round(abs(float(effect)), EFFECT_DECIMALS) > 0


def tie_width(cutoff):
    """How far below ``cutoff`` a value still counts as at it (arrays give an array)."""
    return TIE_TOLERANCE * np.maximum(1.0, np.abs(np.asarray(cutoff, dtype="float64")))


def at_or_above(value, cutoff: float):
    """The tie rule: ``value`` is at or above ``cutoff`` when it is no more than ``tie_width``
    below it (scalars give a bool, arrays a bool array)."""
    return np.asarray(value, dtype="float64") >= float(cutoff) - tie_width(cutoff)


def level_from_cutoffs(value: float, cutoffs: list[float]) -> int:
    """1 for values at or above cutoffs[0], 2 at or above cutoffs[1], …, len(cutoffs)+1 below all."""
    for i, cut in enumerate(cutoffs):
        if at_or_above(value, cut):
            return i + 1
    return len(cutoffs) + 1


@dataclass(frozen=True)
class Cutoffs:
    """Grade cut-offs on one scale (calibrated probability for the model, points for the rules):
    A at or above ``a``, B at or above ``b`` — the sales (SQL) threshold — C at or above ``c``."""

    a: float
    b: float
    c: float

    def __post_init__(self) -> None:
        if not (np.isfinite([self.a, self.b, self.c]).all() and self.a > self.b > self.c):
            raise ValueError(f"grade cut-offs must be finite with a > b > c, found {self.a!r}, {self.b!r}, {self.c!r}")

    @property
    def sales_ready(self) -> float:
        return self.b


def grades_of(values, cutoffs: Cutoffs, excluded=None) -> list[str]:
    """The grade of each value under the tie rule; an exclusion (negative persona) means D."""
    v = np.asarray(values, dtype="float64")
    out = np.where(at_or_above(v, cutoffs.a), "A", np.where(at_or_above(v, cutoffs.b), "B",
                   np.where(at_or_above(v, cutoffs.c), "C", "D")))
    if excluded is not None:
        out = np.where(np.asarray(excluded, dtype=bool), "D", out)
    return out.tolist()


@dataclass(frozen=True)
class Decision:
    """What a lead gets: grade, sales-ready, and the recommendation, always consistent."""

    grade: str
    sales_ready: bool
    recommendation: Recommendation
    recommendation_text: str


def recommend(sales_ready: bool, quadrant: Matrix | None, lang: Lang = "en") -> tuple[Recommendation, str]:
    """``hand_to_sales`` if and only if sales-ready; otherwise the quadrant picks the next step."""
    key = (bool(sales_ready), quadrant.high_fit if quadrant else None, quadrant.high_interest if quadrant else None)
    code, en, de = RECOMMENDATIONS[key]
    return code, de if lang == "de" else en


def decide(grade: str, quadrant: Matrix | None, lang: Lang = "en") -> Decision:
    """The decision for a lead from its grade (``grades_of``, exclusions already applied)."""
    ready = grade in SALES_READY_GRADES
    code, text = recommend(ready, quadrant, lang)
    return Decision(grade, ready, code, text)


def decisions(values, cutoffs: Cutoffs, quadrants: list[Matrix | None], lang: Lang = "en",
              excluded=None) -> list[Decision]:
    """``decide`` for many leads: values on the cut-offs' scale, one quadrant per lead."""
    return [decide(g, q, lang) for g, q in zip(grades_of(values, cutoffs, excluded), quadrants)]


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
    recommendation: Recommendation | None = None
    recommendation_text: str | None = None

    @classmethod
    def decided(cls, decision: Decision, **fields) -> "LeadScore":
        """A LeadScore whose grade, sales-ready flag and recommendation are ``decision``'s."""
        return cls(grade=decision.grade, sales_ready=decision.sales_ready, recommendation=decision.recommendation,
                   recommendation_text=decision.recommendation_text, **fields)


def score_from_probability(p: np.ndarray) -> np.ndarray:
    """The 1–99 score: the probability in percent, never 0 or 100 (nothing is certain)."""
    return np.clip(np.rint(np.asarray(p, dtype="float64") * 100), 1, 99).astype(int)


def display_value(value: object) -> str | float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)
