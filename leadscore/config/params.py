"""``params.yaml`` as typed objects: a wrong key or value fails with its dotted path."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataParams(_Strict):
    export_dir: Path
    demo_leads: int = Field(gt=0)
    demo_seed: int


class FeatureParams(_Strict):
    snapshot_every_days: int = Field(gt=0)
    max_snapshot_age_days: int = Field(gt=0)
    # The label horizon: a number of days, or "auto" (``features.snapshots.resolve_horizon``: the
    # whole weeks that cover ``horizon_coverage`` of past wins, resolved when the training set is built).
    horizon_days: int | Literal["auto"] = Field(union_mode="left_to_right")
    horizon_coverage: float = Field(gt=0, le=1)
    windows_days: list[int] = Field(min_length=1)
    sales_activity_types: list[str]
    hand_raiser_types: list[str]
    free_mail_domains: list[str]
    competitor_domains: list[str]
    column_types: dict[str, str]
    max_category_levels: int = Field(gt=1)
    engagement_half_life_days: float = Field(gt=0)
    engagement_weights: dict[str, float]
    engine: Literal["numpy", "duckdb", "pyspark"]
    # Columns (of the export, or feature names) that never become features: column → why.
    exclude: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> "FeatureParams":
        blank = sorted(k for k, why in self.exclude.items() if not str(why).strip())
        if blank:
            raise ValueError(f"exclude: every column needs a reason (why it is left out), found none for {blank}")
        bad = {k: v for k, v in self.column_types.items() if v not in ("numeric", "category")}
        if bad:
            raise ValueError(f"column_types values must be 'numeric' or 'category', found {bad}")
        negative = {k: v for k, v in self.engagement_weights.items() if v < 0}
        if negative:
            raise ValueError(f"engagement_weights must be 0 or more (0 leaves a type out), found {negative}")
        if self.horizon_days != "auto" and self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be a positive number of days or 'auto', found {self.horizon_days}")
        if any(w <= 0 for w in self.windows_days):
            raise ValueError(f"windows_days must be positive, found {self.windows_days}")
        return self


class SplitParams(_Strict):
    validation_share: float = Field(gt=0, lt=0.5)
    test_share: float = Field(gt=0, lt=0.5)


class CalibrationParams(_Strict):
    """Which calibrator may serve (``models.calibration.fit_calibrator``)."""

    isotonic_min_positives: int = Field(ge=1)  # won rows isotonic needs to be a candidate
    isotonic_min_levels: int = Field(ge=2)  # … and steps it must find
    max_auc_loss: float = Field(ge=0, lt=0.5)  # reject a calibrator whose ROC AUC falls more below the raw margin's
    max_tie_share: float = Field(gt=0, le=1)  # … or that puts more of the rows at one probability
    min_distinct_per_1000: float = Field(ge=0, le=1000)  # … or gives fewer distinct values per 1,000 rows


class TrainParams(_Strict):
    seed: int
    num_boost_round: int = Field(gt=0)
    early_stopping_rounds: int = Field(gt=0)
    lgbm: dict[str, Any]
    # Features (shell patterns) whose effect may only rise / only fall: more hand-raising never lowers a score.
    monotone_increasing: list[str]
    monotone_decreasing: list[str]
    calibration_share: float = Field(gt=0, lt=1)  # the later part of the validation period
    calibration: CalibrationParams
    tune_trials: int = Field(ge=0)  # Optuna trials before training (0: use lgbm as given)
    tune_timeout_s: int = Field(gt=0)


class AuditParams(_Strict):
    """When the leakage audit refuses a feature (see ``training.audit``)."""

    auc_threshold: float = Field(gt=0.5, le=1)
    fill_threshold: float = Field(gt=0.5, le=1)
    name_words: list[str] | None  # None: training.audit.SALES_FIELD_WORDS
    name_auc_threshold: float = Field(gt=0.5, le=1)
    # An identifier or personal data (id, phone, e-mail, free text): at least this share of the
    # leads with a value hold a value no other lead has …
    identifier_share: float = Field(gt=0, le=1)
    identifier_min_rows: int = Field(gt=0)  # … among at least this many leads (rows of a flat export)


class ThresholdParams(_Strict):
    """The SQL threshold and grades A–D, chosen at training from sales capacity (training/thresholds.py)."""

    capacity_per_week: int = Field(gt=0)  # leads sales can follow up per week
    target_precision: float | None = Field(gt=0, lt=1)  # instead: the lowest cut-off with this expected win rate
    grade_a_share: float = Field(gt=0, lt=1)  # grade A: the best share of the capacity
    grade_c_multiple: float = Field(gt=1)  # grade C: down to this multiple of the capacity


class BacktestParams(_Strict):
    """Rolling-origin backtest (training/backtest.py) and the baselines beside the model."""

    folds: int = Field(ge=1)  # cut-offs; the last one is the test period's start
    bootstrap: int = Field(ge=0)  # resamples of leads for the intervals (0: none)
    logistic_c: float = Field(gt=0)  # inverse L2 strength of the logistic regression baseline


class StudyParams(_Strict):
    """The budget and data of the recipe study (scripts/recipe_study.py), which chose ``train``."""

    demo_leads: int = Field(gt=0)  # leads of each demo export
    demo_seeds: list[int] = Field(min_length=1)  # one demo export per seed
    holdout_seeds: list[int]  # demo seeds the search never sees: they only confirm the choice
    small_leads: int = Field(gt=0)  # one small funnel: what little data needs
    small_seed: int
    flat_specs: dict[str, str | None]  # flat spec file -> leave out rows before this time (None: all)
    trials: int = Field(ge=0)  # Optuna trials after the hand-picked candidates
    timeout_s: int = Field(gt=0)  # … bounded by this wall time
    max_brier_gain: float = Field(ge=0)  # eligible: mean Brier at most the current recipe's + this
    cache_dir: Path  # training sets and fold predictions, built once (the ECE bound is registry.max_ece_gain)

    @model_validator(mode="after")
    def _holdout(self) -> "StudyParams":
        unknown = [s for s in self.holdout_seeds if s not in self.demo_seeds]
        if unknown or len(self.holdout_seeds) >= len(self.demo_seeds):
            raise ValueError(f"holdout_seeds must be some, not all, of demo_seeds {self.demo_seeds}, "
                             f"found {self.holdout_seeds}")
        return self


class ExplainParams(_Strict):
    """How contributions become a fit grade, an interest level and a recommendation (models/explain.py)."""

    # Shares of training snapshots at or above grade A / B / C (fit) and level 1 / 2 / 3 (interest).
    fit_shares: list[float] = Field(min_length=3, max_length=3)
    interest_shares: list[float] = Field(min_length=3, max_length=3)
    # The negative persona (DOMAIN.md): any of these values caps the fit grade at D.
    negative_persona: dict[str, list[str | float]]
    # What marketing or the lead can do: the "what would change it" search adds only these.
    actionable_types: list[str]
    max_actions: int = Field(ge=1, le=6)  # the most actions a suggestion may ask for
    # What a rep can confirm in a call (BANT): profile column → the answer a lever tries, e.g.
    # budget_confirmed → "yes". Only columns the model has as profile features are ever offered.
    confirmable: dict[str, str]

    @model_validator(mode="after")
    def _shares(self) -> "ExplainParams":
        for name in ("fit_shares", "interest_shares"):
            v = getattr(self, name)
            if not all(0 < a < b < 1 for a, b in zip(v, v[1:])) or not 0 < v[0]:
                raise ValueError(f"{name} must rise strictly inside (0, 1), found {v}")
        return self


class RegisterParams(_Strict):
    model_name: str
    alias: str  # what serving loads
    challenger_alias: str  # every new version; `leadscore promote` moves the champion to it
    min_won_deals: int = Field(ge=1)  # fewer won deals in training: no model is registered
    # The promotion gate: on the same backtest rows the challenger may not be worse than this.
    max_auc_loss: float = Field(ge=0)
    max_ece_gain: float = Field(ge=0)
    # The baseline gate, for every champion including the first (training/gate.py), over the
    # pooled backtest windows: the 95 % interval of model − rules ROC AUC lies above this …
    min_auc_gain_over_rules: float = Field(ge=0)
    # … and the interval of model − logistic regression reaches −this (not significantly worse).
    max_auc_loss_to_logistic: float = Field(ge=0)


class MonitorParams(_Strict):
    """Drift of features and scores (training/drift.py): recent open leads vs the champion's training rows."""

    window_days: int = Field(gt=0)  # recent side: a snapshot of every open lead each week over this window
    psi_warn: float = Field(gt=0)  # PSI at or above: "shift"
    psi_alert: float = Field(gt=0)  # PSI at or above: "major", and `leadscore drift` exits 2
    psi_bins: int = Field(ge=2, le=100)  # reference quantile bins of a numeric feature

    @model_validator(mode="after")
    def _ordered(self) -> "MonitorParams":
        if self.psi_warn >= self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) must be below psi_alert ({self.psi_alert})")
        return self


class AccountParams(_Strict):
    """How lead scores roll up to an account (models/accounts.py)."""

    rollup: Literal["noisy_or", "max"]  # noisy-OR: the chance at least one lead converts
    max_leads: int | None = Field(ge=1)  # count only the account's most probable leads


class GlossaryText(_Strict):
    """A name or a sentence in both product languages."""

    en: str = Field(min_length=1)
    de: str = Field(min_length=1)


class GlossaryField(GlossaryText):
    """A field's name; optional: the sentence for a missing value, and ``verbatim`` for identifiers."""

    missing: GlossaryText | None = None
    verbatim: bool = False


class GlossaryParams(_Strict):
    """A team's names for its own fields and values, merged over the packaged features/glossary.yaml
    (``leadscore.features.catalog``); a value entry is {en, de} or ``missing`` (a placeholder)."""

    fields: dict[str, GlossaryField]
    values: dict[str, dict[str, GlossaryText | Literal["missing"]]]


class Params(_Strict):
    data: DataParams
    features: FeatureParams
    split: SplitParams
    train: TrainParams
    audit: AuditParams
    thresholds: ThresholdParams
    backtest: BacktestParams
    study: StudyParams  # the recipe study that chose train (scripts/recipe_study.py)
    explain: ExplainParams
    registry: RegisterParams
    monitor: MonitorParams
    accounts: AccountParams
    glossary: GlossaryParams  # the team's field and value names (packaged: empty)
    # Which file these parameters came from (set by ``load_params``): printed by every command, logged to MLflow.
    _source: "ParamsSource | None" = PrivateAttr(default=None)

    @property
    def source(self) -> "ParamsSource | None":
        return self._source

    def digest(self) -> str:
        """sha256 of the effective parameters (the file merged over the packaged defaults)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def record(self) -> dict[str, str]:
        """Which parameters a run used: the file, why it was chosen, its sha256, and ``digest()``.
        The tags of every MLflow run and ``model.info["params"]``."""
        out = {"params_sha256": self.digest()}
        if self._source is not None:
            out.update(self._source.mlflow_tags())
        return out


class ParamsError(ValueError):
    """params.yaml is missing or invalid; the message names the file and the dotted key."""


# The defaults: the one params.yaml, shipped inside the package (the repository's ./params.yaml is
# a link to this file). No field of the models above has a default of its own.
PACKAGED = Path(__file__).with_name("params.yaml")
LOCAL = Path("params.yaml")


def _merge(base: dict, over: dict) -> dict:
    """``over``'s keys on top of ``base``, section by section (a list or value replaces, a mapping merges)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _read(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (data, features, train, …), found {type(raw).__name__}")
    return raw


@dataclass(frozen=True)
class ParamsSource:
    """The file a run's parameters came from, how it was chosen, and its sha256."""

    path: Path
    chosen_by: str  # "--params", "LEADSCORE_PARAMS_PATH", "./params.yaml" or "packaged defaults"
    sha256: str

    @property
    def packaged(self) -> bool:
        return self.path.resolve() == PACKAGED.resolve()

    def sentence(self) -> str:
        if self.chosen_by == "packaged defaults":
            return (f"parameters: the packaged defaults (no --params, LEADSCORE_PARAMS_PATH or ./params.yaml); "
                    f"sha256 {self.sha256[:12]}")
        same = ", the packaged defaults" if self.packaged else ""
        return f"parameters: {self.path} (from {self.chosen_by}{same}); sha256 {self.sha256[:12]}"

    def mlflow_tags(self) -> dict[str, str]:
        # The path as the user named it (never resolved: a model's metadata must not carry the
        # machine's folders); the packaged file by its name inside the package.
        name = "leadscore/config/params.yaml (packaged)" if self.packaged else str(self.path)
        return {"params_file": name, "params_chosen_by": self.chosen_by, "params_file_sha256": self.sha256}


def params_path(path: Path | str | None = None) -> Path:
    """Which parameters file counts: the one given, else ``./params.yaml``, else the packaged defaults.

    A file that is named but missing is an error, never a silent fall-back to the defaults."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ParamsError(f"{path}: parameters file not found")
        return path
    return LOCAL if LOCAL.is_file() else PACKAGED


def load_params(path: Path | str | None = None, chosen_by: str | None = None) -> Params:
    """Read and validate the parameters (``params_path``): a file's keys over the packaged defaults, so
    a team's params.yaml names only what it changes; a wrong key or value names the file and the key.
    ``params.source`` says which file it was (``chosen_by`` names why, e.g. "--params")."""
    given = path is not None
    path = params_path(path)
    if chosen_by is None:
        chosen_by = "given path" if given else "./params.yaml" if path == LOCAL else "packaged defaults"
    raw = _read(PACKAGED)
    if path.resolve() != PACKAGED.resolve():
        raw = _merge(raw, _read(path))
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']} (found {err.get('input')!r})"
            for err in exc.errors()
        ]
        raise ParamsError("\n".join(lines)) from None
    params._source = ParamsSource(path, chosen_by, hashlib.sha256(path.read_bytes()).hexdigest())
    return params


def default_params() -> Params:
    """The packaged defaults alone (whatever ./params.yaml says)."""
    return load_params(PACKAGED, chosen_by="packaged defaults")
