"""The registered MLflow model, as code (MLflow "models from code": nothing is pickled).

``mlflow.pyfunc.load_model("models:/lead-scoring@champion").predict(raw_features)`` returns the
probability; the artifact ``model_dir`` is the LightGBM text model with its feature spec, which
the scoring service reads directly.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from leadscore.models.registry import ARTIFACT


class LeadScoringModel(PythonModel):
    def load_context(self, context) -> None:
        from leadscore.models.lgbm import LeadModel

        self.model = LeadModel.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"probability": self.model.predict_proba(model_input)})


mlflow.models.set_model(LeadScoringModel())
