"""Typed settings read from the environment in one place (prefix ``LEADSCORE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from annotated_types import Ge, Le
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LEADSCORE_"


class SettingsError(ValueError):
    """A setting (environment or .env) is invalid. One line per setting: its name, what it expects,
    what was found (never the value of a key)."""


class Settings(BaseSettings):
    """Where things live. Nothing here touches the file system or MLflow at import time."""

    # `.env` in the working directory is where `leadscore keygen` writes the demo's secrets.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_file=".env")

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
    metrics_keys: SecretStr | None = Field(
        default=None, description="Comma-separated bearer keys that open /metrics and nothing else (for a "
        "Prometheus scraper); the API keys open it too.",
    )
    ledger_url: str | None = Field(
        default=None, description="Score ledger: sqlite:///path.db (default ./ledger.db; a relative path is taken "
        "from the service's working directory) or postgresql+psycopg://…",
    )
    deadline_ms: int = Field(default=1000, ge=10, le=60_000, description="Past this the rules answer a request.")
    max_request_bytes: int = Field(default=10_000_000, ge=1_000, description="Larger request bodies get 413.")
    # The work a request may cause, besides its bytes: what one caller asks for must fit in its
    # deadline, so that it cannot hold the model threads (and the GIL) from the callers after it.
    max_request_activities: int = Field(
        default=50_000, ge=100, le=10_000_000, description="Activities over all leads of one /score request "
        "(1,000 leads × 50 on average; the demo's leads have 27); more get 422 naming leads.",
    )
    max_what_if_leads: int = Field(
        default=50, ge=1, le=1000, description="Leads one request with what_if may carry (each costs ~175 model "
        "rows, ~7 ms); more get 422 naming what_if.",
    )
    max_in_flight: int = Field(default=8, ge=1, description="Concurrent requests per worker; more get 503 at once, "
                               "so admitted ones stay fast (one worker scores one request at a time).")
    body_timeout_s: float = Field(default=10.0, ge=0.1, le=600.0, description="A request body must be complete "
                                  "this many seconds after its headers, else 408; until then it holds no "
                                  "in-flight slot.")
    card_frame_ancestors: str = Field(
        default="'self' https://*.force.com https://*.salesforce.com https://app.hubspot.com https://app-eu1.hubspot.com "
        "https://*.dynamics.com",
        description="Who may embed the lead card in an iframe (CSP frame-ancestors).",
    )
    card_link_ttl_s: int = Field(default=8 * 3600, ge=60, description="How long a signed lead-card link is valid.")
    # --- reading CRM exports: None detects (features/dialect.py), a value overrides the detection
    csv_encoding: str | None = Field(default=None, description="Encoding of CSV exports (utf-8, windows-1252, …).")
    csv_delimiter: Literal[",", ";", "\t"] | None = Field(default=None, description="Field delimiter of CSV exports.")
    csv_decimal: Literal[".", ","] | None = Field(default=None, description="Decimal mark of numbers in CSV exports.")
    csv_date_order: Literal["dmy", "mdy"] | None = Field(default=None, description="Order of slash dates (04/12/2026) "
                                                         "in CSV exports when no value proves it.")
    date_format: Literal["iso", "de"] = Field(
        default="iso", description="Dates typed into the CLI and sent to the API: iso (ISO 8601 only) or de (also "
        "dd.mm.yyyy [HH:MM[:SS]]). Anything else is refused, never guessed; CRM exports are not affected.",
    )

    def keys(self) -> list[str]:
        """The accepted API keys (empty when none is configured)."""
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [k.strip() for k in raw.split(",") if k.strip()]

    def metrics_key_list(self) -> list[str]:
        """The keys that open /metrics only (empty when none is configured)."""
        raw = self.metrics_keys.get_secret_value() if self.metrics_keys else ""
        return [k.strip() for k in raw.split(",") if k.strip()]

    def pseudonym_secret(self) -> bytes | None:
        """The pseudonymisation key as the HMAC takes it (None when it is not set)."""
        key = self.pseudonym_key.get_secret_value().strip() if self.pseudonym_key else ""
        return key.encode() or None

    def ledger(self) -> str:
        """The ledger URL; an SQLite path made absolute from the working directory now, so it names one
        file whatever the process's directory later is."""
        url = self.ledger_url or "sqlite:///ledger.db"
        for scheme in ("sqlite:///", "sqlite+pysqlite:///"):
            if url.startswith(scheme):
                path, query = url[len(scheme):].partition("?")[::2]
                if path and path != ":memory:" and not path.startswith("file:"):
                    path = str(Path(path).expanduser().absolute())
                    return f"{scheme}{path}" + (f"?{query}" if query else "")
        return url


def get_settings() -> Settings:
    """The settings; SettingsError naming each invalid one (``LEADSCORE_DEADLINE_MS: expected …, found 5``)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError("; ".join(_problem(e) for e in exc.errors())) from None


def _problem(error: dict) -> str:
    name = str(error["loc"][0]) if error.get("loc") else "?"
    field = Settings.model_fields.get(name)
    found = error.get("input")
    if field is not None and field.annotation in (SecretStr, SecretStr | None):
        shown = "a value (not shown)"
    else:
        text = str(found)
        shown = repr(text[:60] + ("…" if len(text) > 60 else ""))
    return f"{ENV_PREFIX}{name.upper()}: expected {_expected(field, error)}, found {shown}"


def _expected(field, error: dict) -> str:
    if field is None:
        return str(error.get("msg", "a valid value"))
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    kind = {int: "an integer", float: "a number"}.get(field.annotation)
    if kind and low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if kind and low is not None:
        return f"{kind} of at least {low}"
    if kind:
        return kind
    args = getattr(field.annotation, "__args__", ())
    if args and all(isinstance(a, str) for a in args):
        return "one of " + ", ".join(args)
    return str(error.get("msg", "a valid value")).lower()


def tracking_uri(settings: Settings | None = None) -> str:
    """The MLflow tracking URI: MLFLOW_TRACKING_URI, then LEADSCORE_TRACKING_URI, then ./mlflow.db."""
    import os

    settings = settings or get_settings()
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or settings.tracking_uri
        or f"sqlite:///{Path('mlflow.db').resolve()}"
    )
