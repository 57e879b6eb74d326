"""The regularised logistic regression every model is measured against (beside the SLA rules).

If LightGBM cannot beat a linear model on the same features, its trees add nothing but
complexity. The baseline sees the same raw features as the model: counts and days go through a
signed log (a lead with 40 page views is not 40× one with one), missing values are imputed with
a flag, categories are one-hot encoded (rare levels pooled), and the L2 penalty is
``baselines.logistic_c`` (smaller is stronger).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from leadscore.features.spec import FeatureSpec

MISSING = "(missing)"


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _as_text(frame: pd.DataFrame) -> np.ndarray:
    """Categories as plain strings, missing as one level of its own (one-hot needs no NaN)."""
    return frame.astype("object").where(frame.notna(), MISSING).astype(str).to_numpy()


def logistic_baseline(spec: FeatureSpec, c: float = 0.1, seed: int = 0) -> Pipeline:
    """An unfitted scikit-learn pipeline over a raw feature frame with the spec's columns."""
    numeric = [f.name for f in spec.features if f.kind != "category"]
    category = [f.name for f in spec.features if f.kind == "category"]
    parts = []
    if numeric:
        parts.append(("numeric", make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            FunctionTransformer(_signed_log),
            StandardScaler(),
        ), numeric))
    if category:
        parts.append(("category", make_pipeline(
            FunctionTransformer(_as_text),
            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=True),
        ), category))
    return Pipeline([
        ("features", ColumnTransformer(parts, remainder="drop")),
        ("logistic", LogisticRegression(C=c, max_iter=2000, random_state=seed)),
    ])


def fit_logistic(raw: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, c: float = 0.1, seed: int = 0) -> Pipeline:
    """Fit the baseline on raw features (columns ``spec.names``) and 0/1 labels."""
    return logistic_baseline(spec, c, seed).fit(raw[spec.names], np.asarray(y))


def predict_logistic(pipe: Pipeline, raw: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    return pipe.predict_proba(raw[spec.names])[:, 1]
