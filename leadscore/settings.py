"""Typed settings read from the environment in one place (prefix ``LEADSCORE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live. Nothing here touches the file system or MLflow at import time."""

    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore")

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; MLFLOW_TRACKING_URI wins, else an SQLite file in the working directory.",
    )
    model_name: str = Field(default="lead-scoring", description="Registered model name in MLflow.")
    model_alias: str = Field(default="champion", description="Registry alias that serving loads.")
    params_path: Path = Field(default=Path("params.yaml"), description="Pipeline parameters.")
    rules_path: Path | None = Field(
        default=None, description="SLA rules YAML; the packaged default mirrors DOMAIN.md."
    )
    cache_dir: Path = Field(
        default=Path(".leadscore-cache"), description="Local copy of the champion model for serving."
    )


def get_settings() -> Settings:
    return Settings()


def tracking_uri(settings: Settings | None = None) -> str:
    """The MLflow tracking URI: MLFLOW_TRACKING_URI, then LEADSCORE_TRACKING_URI, then ./mlflow.db."""
    import os

    settings = settings or get_settings()
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or settings.tracking_uri
        or f"sqlite:///{Path('mlflow.db').resolve()}"
    )
