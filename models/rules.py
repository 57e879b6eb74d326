"""The rule-based points scorer: the marketing–sales SLA written as YAML.

It is the fallback whenever the model cannot answer and the baseline the model must beat.
It reads the same features as the model and explains itself with the same Reason objects.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.build import FeatureSpec, _layout
from features.contract import KNOWN_LEAD_COLUMNS
from leadscore.params import FeatureParams
from models.base import Lang, LeadScore, Reason, display_value, grade_from_cutoffs, score_from_probability
from features.catalog import describe

_WINDOW = re.compile(r"^(?P<what>[a-z0-9_]+)_(?P<days>\d+)d$")
_DERIVED = {"activities", "hand_raisers"}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    feature: str
    label: str
    points: float | None = None
    per_unit: float | None = None
    cap: float | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    equals: float | str | None = None
    min: float | None = None
    max: float | None = None
    exclude: bool = False

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
        return self

    @property
    def kind(self) -> Literal["numeric", "category"]:
        return "category" if self.in_ is not None or isinstance(self.equals, str) else "numeric"

    def points_for(self, values: pd.Series) -> np.ndarray:
        """Points this rule gives each row (0 where it does not fire)."""
        if self.per_unit is not None:
            pts = pd.to_numeric(values, errors="coerce").fillna(0).to_numpy(dtype="float64") * self.per_unit
            if self.cap is not None:
                pts = np.clip(pts, -abs(self.cap), abs(self.cap))
            return pts
        if self.in_ is not None:
            fired = values.astype("object").isin([str(v) for v in self.in_]).to_numpy()
        elif self.equals is not None:
            fired = (values.astype("object") == self.equals).to_numpy() if isinstance(self.equals, str) else (
                pd.to_numeric(values, errors="coerce") == self.equals
            ).to_numpy()
        else:
            num = pd.to_numeric(values, errors="coerce")
            fired = num.notna().to_numpy().copy()
            if self.min is not None:
                fired &= (num >= self.min).to_numpy()
            if self.max is not None:
                fired &= (num < self.max).to_numpy()
        return np.where(fired, float(self.points), 0.0)


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


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mql: float
    sql: float


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1"
    probability: Probability = Field(default_factory=Probability)
    grades: Grades
    thresholds: Thresholds
    rules: list[Rule] = Field(min_length=1)


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
        text, name = resources.files("models").joinpath(DEFAULT_RULES).read_text(), f"models/{DEFAULT_RULES}"
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
    """The features the rules read: the standard fit features plus what the rules name."""
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
    standard = {f.name for f in _layout(spec)}
    for rule in config.rules:
        match = _WINDOW.match(rule.feature)
        if match and match["what"] not in _DERIVED:
            activity_types.add(match["what"])
            windows.add(int(match["days"]))
        elif match:
            windows.add(int(match["days"]))
        elif rule.feature not in standard:
            profile[rule.feature] = rule.kind
    # Hand-raisers and unsubscribes feed derived features the rules may name.
    activity_types |= set(spec.hand_raiser_types) | {"unsubscribe"}
    spec.activity_types, spec.windows_days, spec.profile_columns = sorted(activity_types), sorted(windows), profile
    spec.features = _layout(spec)
    missing = [r.feature for r in config.rules if r.feature not in spec.names]
    if missing:
        raise RulesError(f"rules name features that cannot be computed: {missing}")
    return spec


class RuleScorer:
    """Points per attribute and action, from an SLA file; answers through the same interface as the model."""

    name = "rules"

    def __init__(self, config: RulesConfig, feature_params: FeatureParams):
        self.config = config
        self.version = f"rules:{config.version}"
        self.spec = rules_spec(config, feature_params)

    def points(self, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Total points, per-rule points (rows × rules) and whether a hard exclusion fired."""
        per_rule = np.column_stack([r.points_for(raw[r.feature]) for r in self.config.rules])
        excluded = np.zeros(len(raw), dtype=bool)
        for j, rule in enumerate(self.config.rules):
            if rule.exclude:
                excluded |= per_rule[:, j] != 0
        return per_rule.sum(axis=1), per_rule, excluded

    def probability(self, points: np.ndarray) -> np.ndarray:
        p = self.config.probability
        return 1.0 / (1.0 + np.exp(-(np.asarray(points, dtype="float64") - p.midpoint) / p.scale))

    def score_frame(self, raw: pd.DataFrame, lead_ids: list[str], top_k: int = 3, lang: Lang = "en") -> list[LeadScore]:
        if raw.empty:
            return []
        total, per_rule, excluded = self.points(raw)
        proba = self.probability(total)
        g = self.config.grades
        grades = grade_from_cutoffs(total, g.A, g.B, g.C)
        scores = score_from_probability(proba)
        out = []
        for i, lead_id in enumerate(lead_ids):
            fired = np.flatnonzero(per_rule[i])
            order = fired[np.argsort(-np.abs(per_rule[i, fired]), kind="stable")][:top_k]
            reasons = []
            for j in order:
                rule = self.config.rules[j]
                value = display_value(raw.iloc[i][rule.feature])
                text = f"{rule.label} ({describe(rule.feature, value)}): {per_rule[i, j]:+g} points"
                reasons.append(Reason(rule.feature, value, float(per_rule[i, j]), text))
            out.append(
                LeadScore(
                    lead_id=lead_id,
                    probability=float(proba[i]),
                    score=int(scores[i]),
                    grade="D" if excluded[i] else grades[i],
                    reasons=reasons,
                    scorer="rules",
                    model_version=self.version,
                )
            )
        return out
