"""Which scorer answers: the champion model when it loads, otherwise the SLA rules — with the reason."""

from __future__ import annotations

from pathlib import Path

from leadscore.config.params import FeatureParams
from leadscore.config.settings import Settings, get_settings
from leadscore.models.base import Scorer
from leadscore.models.lgbm import LeadModel, ModelLoadError
from leadscore.models.registry import load_champion
from leadscore.models.rules import RuleScorer, load_rules


def rule_scorer(feature_params: FeatureParams, settings: Settings | None = None) -> RuleScorer:
    settings = settings or get_settings()
    return RuleScorer(load_rules(settings.rules_path), feature_params)


def primary_scorer(
    feature_params: FeatureParams, settings: Settings | None = None, model_dir: Path | str | None = None
) -> tuple[Scorer, str | None]:
    """The model (from ``model_dir`` or the registry alias) or, if it cannot load, the rules and why."""
    settings = settings or get_settings()
    try:
        model = LeadModel.load(model_dir) if model_dir else load_champion(settings)
        return model, None
    except ModelLoadError as exc:
        return rule_scorer(feature_params, settings), f"model unavailable: {exc}"
