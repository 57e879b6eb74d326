"""Explanations a sales rep can act on, from exact TreeSHAP contributions.

- **Signals.** The model sees variants of one business signal: an activity type counted over
  7, 30 and 90 days, company size and its band, country and its region. Their contributions
  are summed into the signal, and the sentence describes the variant that moved the score most
  ("Visited the pricing page 3× in the last 30 days").
- **Reasons.** Up to ``top_k`` signals that raised the score and up to ``top_k`` that lowered it.
- **Fit × interest.** Contributions summed by group (fit: who the lead is; interest: what it
  did) place the lead in the 4-field matrix: a fit grade A–D and an interest level 1–4, cut at
  shares of the training snapshots (stored with the model), and the recommendation in domain
  words. The negative persona (students, interns, competitors by default) caps fit at D.

The recommendation is advice; nothing here changes a lead's status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from leadscore.config.params import Params
from leadscore.features.catalog import describe
from leadscore.features.spec import FeatureDef, FeatureSpec
from leadscore.models.decision import Lang, Matrix, Reason, display_value, level_from_cutoffs, matrix, shown

_WINDOW = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d$")
# A feature derived from another one is part of that one's signal.
_PARENT = {"employees_band": "employees", "annual_revenue_band": "annual_revenue", "region": "country"}


def signal_of(feature: str, spec: FeatureSpec) -> str:
    """The business signal a model feature belongs to (``pricing_page_view_30d`` → ``pricing_page_view``)."""
    match = _WINDOW.match(feature)
    if match and (match["what"] in spec.activity_types or match["what"] in ("activities", "hand_raisers", "channels")):
        return match["what"]
    return _PARENT.get(feature, feature)


@dataclass
class Signals:
    """The spec's features grouped into signals: names, group, and a features × signals 0/1 matrix."""

    names: list[str]
    groups: list[str]
    member_of: np.ndarray  # per feature, the index of its signal

    @classmethod
    def of(cls, spec: FeatureSpec) -> "Signals":
        names: list[str] = []
        groups: list[str] = []
        member_of = np.empty(len(spec.features), dtype=np.int64)
        for j, f in enumerate(spec.features):
            s = signal_of(f.name, spec)
            if s not in names:
                names.append(s)
                groups.append(f.group)
            member_of[j] = names.index(s)
        return cls(names, groups, member_of)

    def sum(self, contrib: np.ndarray) -> np.ndarray:
        """Per-row contributions of each signal (rows × signals), summed over its features."""
        out = np.zeros((contrib.shape[0], len(self.names)))
        for j, s in enumerate(self.member_of):
            out[:, s] += contrib[:, j]
        return out


@dataclass
class ExplainSettings:
    """Stored with the model: where the fit grades and interest levels are cut, and the persona rules."""

    fit_cutoffs: list[float]
    interest_cutoffs: list[float]
    negative_persona: dict[str, list]
    sales_ready: float
    actionable_types: list[str] = field(default_factory=list)
    max_actions: int = 3
    # profile column → the value a "confirm in the call" lever tries; {} for models saved before
    confirmable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "ExplainSettings | None":
        return cls(**data) if data else None


def row_sums(values: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
    """Per-row sums over ``columns``, added column by column: the same floats for one row as for
    that row in a batch (numpy's own ``sum(axis=1)`` may pair terms differently by shape)."""
    out = np.zeros(values.shape[0])
    for j in range(values.shape[1]) if columns is None else columns:
        out += values[:, j]
    return out


def group_effects(contrib: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Summed fit and interest contributions per row (log-odds)."""
    fit = [j for j, f in enumerate(spec.features) if f.group == "fit"]
    interest = [j for j, f in enumerate(spec.features) if f.group != "fit"]
    return row_sums(contrib, fit), row_sums(contrib, interest)


def fit_settings(contrib: np.ndarray, spec: FeatureSpec, params: Params, sales_ready: float) -> ExplainSettings:
    """Cut-offs from the training snapshots' contributions: e.g. fit grade A for the best 15 %.
    ``sales_ready`` is the SQL threshold (``training.thresholds``)."""
    fit, interest = group_effects(contrib, spec)
    ex = params.explain
    return ExplainSettings(
        fit_cutoffs=[float(np.quantile(fit, 1 - s)) for s in ex.fit_shares],
        interest_cutoffs=[float(np.quantile(interest, 1 - s)) for s in ex.interest_shares],
        negative_persona={k: list(v) for k, v in ex.negative_persona.items()},
        sales_ready=float(sales_ready),
        actionable_types=list(ex.actionable_types),
        max_actions=ex.max_actions,
        confirmable=dict(ex.confirmable),
    )


def _persona_row(values: Mapping[str, object], persona: dict[str, list]) -> bool:
    for col, wanted in persona.items():
        v = values.get(col)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        for w in wanted:
            if isinstance(w, (int, float)) and not isinstance(w, bool):
                if isinstance(v, (int, float)) and float(v) == float(w):
                    return True
            elif str(v) == str(w):
                return True
    return False


def _true(feature: FeatureDef, value: object) -> bool:
    """Whether a sentence about ``value`` states what the model used: a category value the model
    never saw was scored as missing (the input warnings say so), so it is no reason."""
    if feature.kind != "category" or value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return str(value) in (feature.categories or ())


def as_rows(raw: pd.DataFrame | Sequence[Mapping[str, object]]) -> Sequence[Mapping[str, object]]:
    """Raw feature values as one mapping per row (a DataFrame's rows, or the online path's dicts)."""
    if isinstance(raw, pd.DataFrame):
        return raw.to_dict("records")
    return raw


def explain(
    contrib: np.ndarray,
    raw: pd.DataFrame | Sequence[Mapping[str, object]],
    spec: FeatureSpec,
    settings: ExplainSettings | None,
    *,
    top_k: int = 3,
    lang: Lang = "en",
    signals: Signals | None = None,
) -> list[tuple[list[Reason], Matrix | None]]:
    """Reasons (top positive, then top negative signals) and the matrix position of every row.

    ``contrib``: rows × features (no base column); ``raw``: the raw feature values of the rows."""
    signals = signals or Signals.of(spec)
    rows = as_rows(raw)
    per_signal = signals.sum(contrib)
    fit, interest = group_effects(contrib, spec)
    names = spec.names
    out = []
    for i, values in enumerate(rows):
        row = per_signal[i]
        order = np.argsort(-row, kind="stable")

        def pick(candidates) -> list[Reason]:
            """Up to ``top_k`` true reasons whose effect shows, strongest first."""
            picked: list[Reason] = []
            for s in candidates:
                if len(picked) == top_k:
                    break
                members = np.flatnonzero(signals.member_of == s)
                j = members[np.argmax(np.abs(contrib[i, members]))]
                if not shown(row[s]) or not _true(spec.features[j], values[names[j]]):
                    continue
                value = display_value(values[names[j]])
                picked.append(Reason(signals.names[s], value, float(row[s]), describe(names[j], value, lang),
                                     signals.groups[s]))
            return picked

        reasons = pick(s for s in order if row[s] > 0) + pick(s for s in order[::-1] if row[s] < 0)
        cell = None
        if settings is not None:
            grade = "ABCD"[level_from_cutoffs(fit[i], settings.fit_cutoffs) - 1]
            if _persona_row(values, settings.negative_persona):
                grade = "D"
            level = level_from_cutoffs(interest[i], settings.interest_cutoffs)
            cell = matrix(grade, level, float(fit[i]), float(interest[i]))
        out.append((reasons, cell))
    return out
