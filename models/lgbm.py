"""The LightGBM scorer: a booster in LightGBM's text format plus the feature spec it was trained on.

On disk (and in the MLflow registry) a model is an MLflow model folder: ``model.lgb`` written by
``Booster.save_model`` (text, never a pickle) and an ``MLmodel`` file whose ``metadata.leadscore``
holds the feature spec, grade cut-offs, the calibrator (plain numbers) and the training window.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml

from leadscore.features.build import encode_matrix
from leadscore.features.online import OnlineFeatures
from leadscore.features.spec import FeatureSpec
from leadscore.models import calibration
from leadscore.models.decision import Cutoffs, Lang, LeadScore, decisions, score_from_probability
from leadscore.models.explain import ExplainSettings, Signals, explain, row_sums
from leadscore.models.treeshap import FastTreeShap

MODEL_FILE = "model.lgb"
# Rows of the canary recorded with every saved model (one of missing values, the rest drawn from the
# trees' own split points), and the seed that draws them.
CANARY_ROWS, CANARY_SEED = 16, 0


class ModelLoadError(RuntimeError):
    """A model folder that cannot be used; serving falls back to the rules."""


def folder_digest(folder: Path | str) -> str:
    """SHA-256 over a model folder's files (relative names and bytes, in name order): the checksum
    that registration records and serving verifies before it trusts a cached copy."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass
class LeadModel:
    booster: lgb.Booster
    spec: FeatureSpec
    grades: dict[str, float]
    info: dict[str, Any]
    version: str = "local"
    calibrator: dict[str, Any] | None = None
    explain: ExplainSettings | None = None
    # Encoded rows and the margins and probabilities this booster gave them when it was saved
    # (``record_canary``); serving predicts them again before it trusts a model (serving.model_check).
    canary: dict[str, list] | None = None
    name = "model"

    def __post_init__(self) -> None:
        self.signals = Signals.of(self.spec)
        self.online = OnlineFeatures(self.spec)
        self._shap: FastTreeShap | None = None
        # Where serving got it from ("registry", "cache: <why>", "folder") and its verified SHA-256.
        self.origin: str = "folder"
        self.digest: str | None = None

    @property
    def shap(self) -> FastTreeShap:
        """Exact TreeSHAP for this booster (``models.treeshap``), built on first use."""
        if self._shap is None:
            self._shap = FastTreeShap(self.booster)
        return self._shap

    def metadata(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "grades": self.grades, "info": self.info, "calibrator": self.calibrator,
                "explain": self.explain.to_dict() if self.explain else None, "canary": self.canary}

    def record_canary(self) -> dict[str, list]:
        """Record (in ``canary``) rows that reach many of the trees' leaves and what this booster
        and calibrator answer for them: the values a copy of the model must reproduce."""
        rows = _canary_rows(self.booster, self.spec, CANARY_ROWS, CANARY_SEED)
        margin = self.margin(rows)
        self.canary = {
            "rows": [[None if math.isnan(v) else float(v) for v in row] for row in rows.tolist()],
            "margin": [float(m) for m in margin],
            "probability": [float(p) for p in self.probability(margin)],
        }
        return self.canary

    @property
    def cutoffs(self) -> Cutoffs:
        """The grade cut-offs as the calibrated probabilities they were chosen at (B = the SQL threshold)."""
        return Cutoffs(float(self.grades["a"]), float(self.grades["b"]), float(self.grades["c"]))

    @property
    def sales_ready(self) -> float:
        """The probability at or above which a lead is recommended to sales (the SQL threshold)."""
        return self.cutoffs.sales_ready

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP values on the margin (rows × features), plus the base value as last column:
        the layout of LightGBM's ``pred_contrib``, identical to it within 1e-12, ~35× faster."""
        return self.shap.contributions(X)

    def score_one(
        self,
        profile: Mapping[str, object],
        activities: Sequence[tuple[int, str, str | None]],
        as_of_us: int,
        *,
        top_k: int = 3,
        lang: Lang = "en",
    ) -> LeadScore:
        """One lead, the live path: features without pandas (``features.online``), NumPy into
        LightGBM on one thread, reasons and matrix — the same answer ``score_frame`` gives."""
        raw, x = self.online.features(profile, activities, as_of_us)
        contrib = self.contributions(x.reshape(1, -1))
        return self._results(contrib, [raw], [str(profile["lead_id"])], top_k, lang)[0]

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw log-odds of the booster for an encoded matrix (what SHAP values add up to)."""
        return self.booster.predict(X, raw_score=True)

    def probability(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probability for raw margins (the booster's sigmoid if there is no calibrator)."""
        return calibration.apply(self.calibrator, margin)

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        return self.probability(self.margin(encode_matrix(raw, self.spec)))

    def score_frame(self, raw: pd.DataFrame, lead_ids: list[str], top_k: int = 3, lang: Lang = "en") -> list[LeadScore]:
        """Calibrated probabilities, reasons from exact TreeSHAP, and the fit × interest matrix."""
        if raw.empty:
            return []
        X = encode_matrix(raw, self.spec)
        return self._results(self.contributions(X), raw, lead_ids, top_k, lang)

    def _results(self, contrib: np.ndarray, raw, lead_ids: list[str], top_k: int, lang: Lang) -> list[LeadScore]:
        proba = self.probability(row_sums(contrib))
        scores = score_from_probability(proba)
        explained = explain(contrib[:, :-1], raw, self.spec, self.explain, top_k=top_k, lang=lang, signals=self.signals)
        decided = decisions(proba, self.cutoffs, [cell for _, cell in explained], lang)
        return [
            LeadScore.decided(
                decided[i],
                lead_id=lead_id,
                probability=float(proba[i]),
                score=int(scores[i]),
                reasons=explained[i][0],
                scorer="model",
                model_version=self.version,
                matrix=explained[i][1],
            )
            for i, lead_id in enumerate(lead_ids)
        ]

    def save(self, folder: Path | str, *, input_example: pd.DataFrame | None = None) -> Path:
        """Write an MLflow model folder (``mlflow.lightgbm`` flavour, text booster), with a canary
        recorded from this booster."""
        import mlflow.lightgbm

        folder = Path(folder)
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        self.record_canary()
        mlflow.lightgbm.save_model(
            self.booster,
            str(folder),
            signature=self.signature(),
            metadata={"leadscore": self.metadata()},
            # Named, not inferred: inference imports the model in a subprocess (~4 s per save).
            pip_requirements=[f"lightgbm=={lgb.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}"],
        )
        return folder

    def signature(self):
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        inputs = Schema([ColSpec("string" if f.kind == "category" else "double", f.name) for f in self.spec.features])
        outputs = Schema([ColSpec("double", "probability")])
        return ModelSignature(inputs=inputs, outputs=outputs)

    @classmethod
    def load(cls, folder: Path | str, version: str = "local") -> "LeadModel":
        """Load a model folder; anything but a readable text booster raises ModelLoadError."""
        folder = Path(folder)
        mlmodel, booster_file = folder / "MLmodel", folder / MODEL_FILE
        if not mlmodel.exists() or not booster_file.exists():
            raise ModelLoadError(f"{folder}: expected MLmodel and {MODEL_FILE}, found {sorted(p.name for p in folder.glob('*'))}")
        head = booster_file.read_bytes()[:64]
        if not head.startswith(b"tree"):
            # LightGBM text models start with "tree"; anything else (a pickle, say) is refused.
            raise ModelLoadError(f"{booster_file}: expected a LightGBM text model, found {head[:16]!r}")
        meta = (yaml.safe_load(mlmodel.read_text()) or {}).get("metadata", {}).get("leadscore")
        if not meta:
            raise ModelLoadError(f"{mlmodel}: no leadscore metadata (feature spec)")
        try:
            booster = lgb.Booster(model_file=str(booster_file))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"{booster_file}: {exc}") from None
        return cls(booster, FeatureSpec.from_dict(meta["spec"]), meta["grades"], meta.get("info", {}), version,
                   meta.get("calibrator"), ExplainSettings.from_dict(meta.get("explain")), meta.get("canary"))


def _canary_rows(booster: lgb.Booster, spec: FeatureSpec, n: int, seed: int) -> np.ndarray:
    """``n`` encoded rows: the first all missing, the others a seeded draw per feature from its
    split thresholds (each just below or just above), its category indices, or missing."""
    rng = np.random.default_rng(seed)
    thresholds: dict[int, set[float]] = {}
    for tree in booster.dump_model()["tree_info"]:
        todo = [tree["tree_structure"]]
        while todo:
            node = todo.pop()
            if "split_index" in node:
                if node["decision_type"] != "==":
                    thresholds.setdefault(int(node["split_feature"]), set()).add(float(node["threshold"]))
                todo += [node["left_child"], node["right_child"]]
    rows = np.full((n, len(spec.features)), np.nan)
    for j, f in enumerate(spec.features):
        if f.kind == "category":
            choices = np.arange(len(f.categories or []), dtype=np.float64)
        else:
            cuts = np.array(sorted(thresholds.get(j, {0.0})))
            choices = np.concatenate([cuts, np.nextafter(cuts, np.inf) + 1e-9 * np.abs(cuts)])
        choices = np.append(choices, np.nan)
        rows[1:, j] = rng.choice(choices, size=n - 1)
    return rows
