"""Typed settings read from the environment in one place (prefix ``LEADSCORE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live. Nothing here touches the file system or MLflow at import time."""

    # `.env` in the working directory is where `leadscore keygen` writes the demo's secrets.
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore", env_file=".env")

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; MLFLOW_TRACKING_URI wins, else an SQLite file in the working directory.",
    )
    model_name: str = Field(default="lead-scoring", description="Registered model name in MLflow.")
    model_alias: str = Field(default="champion", description="Registry alias that serving loads.")
    params_path: Path | None = Field(
        default=None, description="Pipeline parameters; unset: ./params.yaml if there is one, else the packaged defaults."
    )
    rules_path: Path | None = Field(
        default=None, description="SLA rules YAML; the packaged default mirrors DOMAIN.md."
    )
    cache_dir: Path = Field(
        default=Path(".leadscore-cache"), description="Local copy of the champion model for serving."
    )
    # --- serving
    api_keys: SecretStr | None = Field(
        default=None, description="Comma-separated bearer keys the API accepts (several, for rotation)."
    )
    pseudonym_key: SecretStr | None = Field(
        default=None, description="Key of the HMAC that pseudonymises lead ids in the ledger and the logs; "
        "the same on every replica.",
    )
    ledger_url: str | None = Field(
        default=None, description="Score ledger: sqlite:///path.db (default ./ledger.db) or postgresql+psycopg://…",
    )
    deadline_ms: int = Field(default=1000, ge=10, le=60_000, description="Past this the rules answer a request.")
    max_request_bytes: int = Field(default=10_000_000, ge=1_000, description="Larger request bodies get 413.")
    max_in_flight: int = Field(default=8, ge=1, description="Concurrent requests per worker; more get 503 at once, "
                               "so admitted ones stay fast (one worker scores one request at a time).")
    card_frame_ancestors: str = Field(
        default="'self' https://*.force.com https://*.salesforce.com https://app.hubspot.com https://app-eu1.hubspot.com "
        "https://*.dynamics.com",
        description="Who may embed the lead card in an iframe (CSP frame-ancestors).",
    )
    card_link_ttl_s: int = Field(default=8 * 3600, ge=60, description="How long a signed lead-card link is valid.")
    date_format: Literal["iso", "de"] = Field(
        default="iso", description="Dates typed into the CLI and sent to the API: iso (ISO 8601 only) or de (also "
        "dd.mm.yyyy [HH:MM[:SS]]). Anything else is refused, never guessed; CRM exports are not affected.",
    )

    def keys(self) -> list[str]:
        """The accepted API keys (empty when none is configured)."""
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [k.strip() for k in raw.split(",") if k.strip()]

    def pseudonym_secret(self) -> bytes | None:
        """The pseudonymisation key as the HMAC takes it (None when it is not set)."""
        key = self.pseudonym_key.get_secret_value().strip() if self.pseudonym_key else ""
        return key.encode() or None

    def ledger(self) -> str:
        return self.ledger_url or f"sqlite:///{Path('ledger.db').resolve()}"


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
