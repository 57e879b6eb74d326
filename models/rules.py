"""The rule-based points scorer: the marketing–sales SLA written as YAML.

It is the fallback whenever the model cannot answer and the baseline the model must beat.
It reads the same features as the model and explains itself with the same Reason objects,
split into fit and interest like the model, and placed in the same fit × interest matrix.
The file format is described in ``models/README.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from leadscore.config.params import FeatureParams
from leadscore.features.catalog import describe
from leadscore.features.contract import KNOWN_LEAD_COLUMNS
from leadscore.features.online import to_number
from leadscore.features.spec import FeatureSpec, decayed_name, layout
from leadscore.models.decision import (
    Cutoffs,
    Lang,
    LeadScore,
    SALES_READY_GRADES,
    Reason,
    decide,
    display_value,
    grades_of,
    level_from_cutoffs,
    matrix,
    score_from_probability,
    shown,
)

_WINDOW = re.compile(r"^(?P<what>[a-z0-9_]+)_(?P<days>\d+)d$")
# Windowed features that count more than one activity type; not "<type>_<N>d" counts.
_DERIVED = {"activities", "hand_raisers", "channels"}
Group = Literal["fit", "interest"]


class Label(BaseModel):
    """What a rule means, for a sales rep: English always, German when given (else English)."""

    model_config = ConfigDict(extra="forbid")
    en: str = Field(min_length=1)
    de: str | None = Field(None, min_length=1)

    def text(self, lang: Lang = "en") -> str:
        return self.de if lang == "de" and self.de else self.en


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    feature: str
    label: Label
    points: float | None = None
    per_unit: float | None = None
    cap: float | None = None
    # Validated after 'feature' and 'per_unit' (field order), which its check reads.
    half_life_days: float | None = Field(None, gt=0)
    in_: list[str] | None = Field(default=None, alias="in")
    equals: float | str | None = None
    min: float | None = None
    max: float | None = None
    exclude: bool = False
    group: Group | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _label_text(cls, value: object) -> object:
        if isinstance(value, str):
            return {"en": value}
        if isinstance(value, dict) and "en" not in value:
            raise ValueError("a label is a text (English) or {en: ..., de: ...}; 'en' is missing")
        return value

    @field_validator("half_life_days")
    @classmethod
    def _decays_a_count(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return value
        if info.data.get("per_unit") is None:
            raise ValueError("'half_life_days' goes with 'per_unit': it decays each counted action")
        feature = info.data.get("feature")
        match = _WINDOW.match(feature) if isinstance(feature, str) else None
        if not match or match["what"] in _DERIVED:
            raise ValueError(
                "'half_life_days' needs a count of one activity type in a window, like pricing_page_view_30d; "
                f"found {feature!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_condition(self) -> "Rule":
        if (self.points is None) == (self.per_unit is None):
            raise ValueError("give exactly one of 'points' (a condition's points) or 'per_unit' (points per count)")
        conditions = [self.in_ is not None, self.equals is not None, self.min is not None or self.max is not None]
        if self.per_unit is not None and any(conditions):
            raise ValueError("'per_unit' rules count the feature's value and take no condition")
        if self.points is not None and sum(conditions) != 1:
            raise ValueError("a 'points' rule needs exactly one condition: 'in', 'equals', or 'min'/'max'")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"'min' ({self.min}) must be below 'max' ({self.max})")
        if self.cap is not None and self.per_unit is None:
            raise ValueError("'cap' goes with 'per_unit'")
        if self.exclude and (self.points is None or self.points > 0):
            raise ValueError("'exclude' marks a negative-persona condition: it needs 'points' of 0 or less and a condition")
        return self

    @property
    def kind(self) -> Literal["numeric", "category"]:
        return "category" if self.in_ is not None or isinstance(self.equals, str) else "numeric"

    @property
    def counted(self) -> str:
        """The feature the points are read from: the decayed count when the rule has a half-life."""
        if self.half_life_days is None:
            return self.feature
        match = _WINDOW.match(self.feature)
        return decayed_name(match["what"], int(match["days"]), self.half_life_days)

    def fires(self, values: pd.Series) -> np.ndarray:
        """Whether the rule applies to each row: its condition holds, or its count is not zero."""
        return compile_rule(self).column_fires(values)

    def points_for(self, values: pd.Series) -> np.ndarray:
        """Points this rule gives each row (0 where it does not fire); ``values`` are the ``counted`` feature's."""
        return compile_rule(self).column_points(values)


Test = Literal["count", "in", "equals_text", "equals_number", "range"]


def _number(value: object) -> float:
    """One cell as ``pd.to_numeric(..., errors="coerce")`` reads it (``features.online.to_number``)."""
    return value if type(value) is float else to_number(value)


def _clip(x: float, low: float, high: float) -> float:
    """``np.clip`` on one float, as numpy defines it (NaN stays; at a bound the bound wins, even -0.0 over 0.0)."""
    if x != x:
        return x
    x = x if x > low else low
    return x if x < high else high


@dataclass(frozen=True)
class CompiledRule:
    """One SLA rule as both evaluators read it: ``column_*`` over a batch column (pandas),
    ``one_*`` over one lead's value (plain Python, the live path). Both read only these fields,
    so the batch and live paths cannot disagree on what a rule means."""

    feature: str  # the condition's feature, the value a reason shows
    counted: str  # the feature the points are read from (the decayed count with a half-life)
    test: Test
    points: float  # a condition's points, or the points per unit of a count
    cap: float | None  # |cap| of a count's points
    levels: frozenset[str] = frozenset()  # 'in'
    equals: float | str | None = None
    low: float | None = None  # 'min', inclusive
    high: float | None = None  # 'max', exclusive
    exclude: bool = False

    # --- batch: a column of rows

    def column_fires(self, values: pd.Series) -> np.ndarray:
        if self.test == "count":
            return pd.to_numeric(values, errors="coerce").fillna(0).to_numpy(dtype="float64") != 0
        if self.test == "in":
            return values.astype("object").isin(list(self.levels)).to_numpy()
        if self.test == "equals_text":
            return (values.astype("object") == self.equals).to_numpy()
        num = pd.to_numeric(values, errors="coerce")
        if self.test == "equals_number":
            return (num == self.equals).to_numpy()
        fired = num.notna().to_numpy().copy()
        if self.low is not None:
            fired &= (num >= self.low).to_numpy()
        if self.high is not None:
            fired &= (num < self.high).to_numpy()
        return fired

    def column_points(self, values: pd.Series) -> np.ndarray:
        if self.test == "count":
            # The cap applies after the decay: it bounds the points, whatever their age.
            pts = pd.to_numeric(values, errors="coerce").fillna(0).to_numpy(dtype="float64") * self.points
            if self.cap is not None:
                pts = np.clip(pts, -self.cap, self.cap)
            return pts
        return np.where(self.column_fires(values), self.points, 0.0)

    # --- live: one lead's value, as the column code treats that cell

    def one_fires(self, value: object) -> bool:
        test = self.test
        if test == "count":
            x = _number(value)
            return x == x and x != 0  # NaN counts as 0
        if test == "in":
            return value in self.levels  # as isin: hashable cells (text, floats, None); text never equals a number
        if test == "equals_text":
            return isinstance(value, str) and value == self.equals
        x = _number(value)
        if test == "equals_number":
            return x == self.equals
        return x == x and (self.low is None or x >= self.low) and (self.high is None or x < self.high)

    def one_points(self, value: object) -> float:
        if self.test == "count":
            x = _number(value)
            pts = (0.0 if x != x else x) * self.points
            return pts if self.cap is None else _clip(pts, -self.cap, self.cap)
        return self.points if self.one_fires(value) else 0.0


def compile_rule(rule: Rule) -> CompiledRule:
    """The one reading of a rule's fields (``models/README.md``) that both evaluators share."""
    common = {"feature": rule.feature, "counted": rule.counted, "exclude": rule.exclude}
    if rule.per_unit is not None:
        cap = None if rule.cap is None else abs(float(rule.cap))
        return CompiledRule(test="count", points=float(rule.per_unit), cap=cap, **common)
    points = float(rule.points)
    if rule.in_ is not None:
        return CompiledRule(test="in", points=points, cap=None, levels=frozenset(str(v) for v in rule.in_), **common)
    if isinstance(rule.equals, str):
        return CompiledRule(test="equals_text", points=points, cap=None, equals=rule.equals, **common)
    if rule.equals is not None:
        return CompiledRule(test="equals_number", points=points, cap=None, equals=rule.equals, **common)
    return CompiledRule(test="range", points=points, cap=None, low=rule.min, high=rule.max, **common)


class Probability(BaseModel):
    model_config = ConfigDict(extra="forbid")
    midpoint: float = 90
    scale: float = Field(18, gt=0)


class Grades(BaseModel):
    model_config = ConfigDict(extra="forbid")
    A: float
    B: float
    C: float

    @model_validator(mode="after")
    def _ordered(self) -> "Grades":
        if not self.A > self.B > self.C:
            raise ValueError(f"grade points must satisfy A > B > C, found {self.A}, {self.B}, {self.C}")
        return self


class MatrixCutoffs(BaseModel):
    """Where a lead sits in the fit × interest grid: fit grade from the fit points, interest level
    from the interest points."""

    model_config = ConfigDict(extra="forbid")
    fit: Grades
    interest: list[float] = Field(min_length=3, max_length=3)

    @field_validator("interest")
    @classmethod
    def _falling(cls, value: list[float]) -> list[float]:
        if not value[0] > value[1] > value[2]:
            raise ValueError(f"interest cut-offs are levels 1, 2, 3 and must fall (l1 > l2 > l3), found {value}")
        return value


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mql: float
    sql: float

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if self.mql > self.sql:
            raise ValueError(f"'mql' ({self.mql}) must not be above 'sql' ({self.sql}): sales-ready comes after MQL")
        return self


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1"
    probability: Probability = Field(default_factory=Probability)
    grades: Grades
    thresholds: Thresholds
    matrix: MatrixCutoffs
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _b_is_sales_ready(self) -> "RulesConfig":
        # One decision (models.decision): grade B starts at the SQL threshold, so grade and
        # sales-ready can never disagree.
        if self.grades.B != self.thresholds.sql:
            raise ValueError(f"grades.B ({self.grades.B:g}) must equal thresholds.sql ({self.thresholds.sql:g}): "
                             "grade B is the lowest sales-ready grade (A and B are sales-ready, C and D are not)")
        return self


class RulesError(ValueError):
    """An invalid SLA file: the message names the file, the line and the reason."""


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or its nearest ancestor)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


DEFAULT_RULES = "default_sla.yaml"


def load_rules(path: Path | str | None = None) -> RulesConfig:
    """Read and validate an SLA file (the packaged default when ``path`` is None)."""
    if path is None:
        text, name = resources.files(__package__).joinpath(DEFAULT_RULES).read_text(), f"models/{DEFAULT_RULES}"
    else:
        path = Path(path)
        if not path.exists():
            raise RulesError(f"{path}: no such SLA rules file")
        text, name = path.read_text(), str(path)
    try:
        raw, root = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{name}: not valid YAML: {exc}") from None
    try:
        return RulesConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and k.startswith("function-")))
            where = ".".join(str(k) for k in loc) or "top level"
            line = _line_of(root, loc)
            lines.append(f"{name}, line {line} ({where}): {err['msg']}")
        raise RulesError("\n".join(lines)) from None


def rules_spec(config: RulesConfig, cfg: FeatureParams) -> FeatureSpec:
    """The features the rules read: the standard fit features plus what the rules name, and the
    decayed counts of the rules with a half-life."""
    activity_types, windows, profile = set(), set(cfg.windows_days), {}
    spec = FeatureSpec(
        activity_types=[],
        windows_days=sorted(windows),
        hand_raiser_types=[t.lower() for t in cfg.hand_raiser_types],
        sales_activity_types=sorted(t.lower() for t in cfg.sales_activity_types),
        free_mail_domains=[d.lower() for d in cfg.free_mail_domains],
        competitor_domains=[d.lower() for d in cfg.competitor_domains],
        lead_columns=list(KNOWN_LEAD_COLUMNS),
        profile_columns={},
    )
    # What every export with the known lead columns computes; anything else a rule names is a
    # windowed activity count or a profile column.
    standard = {f.name for f in layout(spec)}
    decayed = set()
    for rule in config.rules:
        match = _WINDOW.match(rule.feature)
        if match and match["what"] not in _DERIVED:
            activity_types.add(match["what"])
            windows.add(int(match["days"]))
            if rule.half_life_days is not None:
                decayed.add((match["what"], int(match["days"]), float(rule.half_life_days)))
        elif match:
            windows.add(int(match["days"]))
        elif rule.feature not in standard:
            profile[rule.feature] = rule.kind
    # Hand-raisers and unsubscribes feed derived features the rules may name.
    activity_types |= set(spec.hand_raiser_types) | {"unsubscribe"}
    spec.activity_types, spec.windows_days, spec.profile_columns = sorted(activity_types), sorted(windows), profile
    spec.decayed_counts = [list(d) for d in sorted(decayed)]
    spec.features = layout(spec)
    names = set(spec.names)
    missing = sorted({f for r in config.rules for f in (r.feature, r.counted) if f not in names})
    if missing:
        raise RulesError(f"{config.name}: rules name features that cannot be computed: {missing}")
    return spec


def _points_text(points: float, lang: Lang) -> str:
    """'+30 points', '+2.3 points', '-15 Punkte', '+2,3 Punkte' (decayed points to one decimal)."""
    rounded = round(points, 1)
    if rounded == 0 and points != 0:
        number = f"{points:+.2g}"
    elif rounded == round(rounded):
        number = f"{int(round(rounded)):+d}"
    else:
        number = f"{rounded:+.1f}"
    one = number in ("+1", "-1")
    if lang == "de":
        return f"{number.replace('.', ',')} {'Punkt' if one else 'Punkte'}"
    return f"{number} {'point' if one else 'points'}"


def _decay_text(half_life_days: float, lang: Lang) -> str:
    days = f"{half_life_days:g}"
    if lang == "de":
        return f"jede zählt alle {days.replace('.', ',')} Tage nur noch halb so viel"
    return f"each counts half as much every {days} days"


class RuleScorer:
    """Points per attribute and action, from an SLA file; answers through the same interface as the model."""

    name = "rules"

    def __init__(self, config: RulesConfig, feature_params: FeatureParams):
        self.config = config
        self.version = f"rules:{config.version}"
        self.spec = rules_spec(config, feature_params)
        by_feature = {f.name: f.group for f in self.spec.features}
        # Fit or interest: what the feature is, unless the rule says otherwise.
        self.groups: list[Group] = [r.group or by_feature[r.feature] for r in config.rules]
        self._compiled: tuple[list[Rule], tuple[CompiledRule, ...]] | None = None

    @property
    def table(self) -> tuple[CompiledRule, ...]:
        """The rules compiled once (again if ``config.rules`` was replaced): what both evaluators read."""
        rules = self.config.rules
        if self._compiled is None or self._compiled[0] is not rules:
            self._compiled = (rules, tuple(compile_rule(r) for r in rules))
        return self._compiled[1]

    def _evaluate(self, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per-rule points (rows × rules) and which exclusion rules fired (rows × rules)."""
        table = self.table
        per_rule = np.column_stack([c.column_points(raw[c.counted]) for c in table])
        exclusions = np.zeros(per_rule.shape, dtype=bool)
        for j, c in enumerate(table):
            if c.exclude:
                exclusions[:, j] = c.column_fires(raw[c.feature])
        return per_rule, exclusions

    def _evaluate_rows(self, raws: Sequence[Mapping[str, object]]) -> tuple[np.ndarray, np.ndarray]:
        """``_evaluate`` over feature dicts (the live path): the same arrays, cell by cell, no pandas."""
        table = self.table
        per_rule = np.array([[c.one_points(raw[c.counted]) for c in table] for raw in raws], dtype="float64")
        exclusions = np.array([[c.exclude and c.one_fires(raw[c.feature]) for c in table] for raw in raws], dtype=bool)
        return per_rule.reshape(len(raws), len(table)), exclusions.reshape(len(raws), len(table))

    def points(self, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Total points, per-rule points (rows × rules) and whether a hard exclusion fired."""
        per_rule, exclusions = self._evaluate(raw)
        return per_rule.sum(axis=1), per_rule, exclusions.any(axis=1)

    @property
    def cutoffs(self) -> Cutoffs:
        """The grade cut-offs on the total points; B is the SQL threshold (``thresholds.sql``)."""
        g = self.config.grades
        return Cutoffs(g.A, g.B, g.C)

    def grades(self, total: np.ndarray, excluded: np.ndarray) -> list[str]:
        """Grade A–D per row from the total points; an exclusion (negative persona) means D."""
        return grades_of(total, self.cutoffs, excluded)

    def sales_ready(self, total: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """Whether each row is sales-ready: grade A or B (``models.decision``)."""
        return np.isin(self.grades(total, excluded), SALES_READY_GRADES)

    def fit_interest(self, per_rule: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fit points and the interest points of each row."""
        is_fit = np.array([g == "fit" for g in self.groups])
        return per_rule[:, is_fit].sum(axis=1), per_rule[:, ~is_fit].sum(axis=1)

    def probability(self, points: np.ndarray) -> np.ndarray:
        p = self.config.probability
        return 1.0 / (1.0 + np.exp(-(np.asarray(points, dtype="float64") - p.midpoint) / p.scale))

    def _reason_order(self, row: np.ndarray, fired: np.ndarray, top_k: int) -> list[int]:
        """Exclusions that fired, then up to ``top_k`` positive rules (strongest first), then the
        other negatives (most negative first); exclusions count towards the ``top_k`` negatives."""
        falling, rising = np.argsort(-row, kind="stable"), np.argsort(row, kind="stable")
        # Points that round to zero where they are shown are no reason; a fired exclusion always is.
        positives = [int(j) for j in falling if row[j] > 0 and shown(row[j])][:top_k]
        excluded = [int(j) for j in rising if fired[j]]
        negatives = (excluded + [int(j) for j in rising if row[j] < 0 and shown(row[j]) and not fired[j]])[:top_k]
        return [j for j in negatives if fired[j]] + positives + [j for j in negatives if not fired[j]]

    def score_frame(self, raw: pd.DataFrame, lead_ids: list[str], top_k: int = 3, lang: Lang = "en") -> list[LeadScore]:
        """Points, grade, reasons and matrix for each row of a feature table (the batch path)."""
        if raw.empty:
            return []
        columns: dict[str, pd.Series] = {}

        def value(i: int, feature: str) -> object:
            if feature not in columns:
                columns[feature] = raw[feature]
            return columns[feature].iat[i]

        return self._results(*self._evaluate(raw), value, lead_ids, top_k, lang)

    def score_rows(self, raws: Sequence[Mapping[str, object]], lead_ids: list[str], top_k: int = 3,
                   lang: Lang = "en") -> list[LeadScore]:
        """``score_frame`` for feature dicts (``OnlineFeatures.features``' raw values), without pandas:
        the live path. Same rule table, same decision code, bit for bit the same answers."""
        if not raws:
            return []
        return self._results(*self._evaluate_rows(raws), lambda i, feature: raws[i][feature], lead_ids, top_k, lang)

    def _results(self, per_rule: np.ndarray, exclusions: np.ndarray, value: Callable[[int, str], object],
                 lead_ids: list[str], top_k: int, lang: Lang) -> list[LeadScore]:
        """Per-rule points and exclusions → LeadScores; ``value(i, feature)`` is row ``i``'s raw value."""
        total, excluded = per_rule.sum(axis=1), exclusions.any(axis=1)
        fit_points, interest_points = self.fit_interest(per_rule)
        proba = self.probability(total)
        scores = score_from_probability(proba)
        cut = self.config.matrix
        grades = self.grades(total, excluded)
        fit_grades = grades_of(fit_points, Cutoffs(cut.fit.A, cut.fit.B, cut.fit.C))
        out = []
        for i, lead_id in enumerate(lead_ids):
            reasons = []
            for j in self._reason_order(per_rule[i], exclusions[i], top_k):
                rule = self.config.rules[j]
                shown_value = display_value(value(i, rule.feature))
                what = describe(rule.feature, shown_value, lang)
                if rule.half_life_days is not None:
                    what = f"{what}, {_decay_text(rule.half_life_days, lang)}"
                text = f"{rule.label.text(lang)} ({what}): {_points_text(per_rule[i, j], lang)}"
                reasons.append(Reason(rule.feature, shown_value, float(per_rule[i, j]), text, self.groups[j]))
            # A negative-persona exclusion puts the lead in fit grade D and grade D; the score and
            # the recommendation still come out, and people decide what to do with it.
            fit_grade = "D" if excluded[i] else fit_grades[i]
            level = level_from_cutoffs(float(interest_points[i]), cut.interest)
            quadrant = matrix(fit_grade, level, float(fit_points[i]), float(interest_points[i]))
            out.append(
                LeadScore.decided(
                    decide(grades[i], quadrant, lang),
                    lead_id=lead_id,
                    probability=float(proba[i]),
                    score=int(scores[i]),
                    reasons=reasons,
                    scorer="rules",
                    model_version=self.version,
                    matrix=quadrant,
                )
            )
        return out
