"""The MLflow model registry: where trained models live, and how scorers get them back."""

from __future__ import annotations

import shutil
from pathlib import Path

from leadscore.settings import Settings, get_settings, tracking_uri
from models.lgbm import LeadModel, ModelLoadError

# The registered pyfunc's artifact that holds the LightGBM text model folder.
ARTIFACT = "model_dir"


def use_tracking(settings: Settings | None = None) -> str:
    """Point MLflow at the project's tracking store (called by commands, never at import)."""
    import mlflow

    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def load_champion(settings: Settings | None = None) -> LeadModel:
    """The model behind the registry alias (``champion``), copied to the local cache first.

    Raises ModelLoadError with the reason when there is none or it cannot be read.
    """
    settings = settings or get_settings()
    return load_alias(settings.model_alias, settings)


def load_alias(alias: str, settings: Settings | None = None, model_name: str | None = None) -> LeadModel:
    """The model behind any alias of the registered model (``champion``, ``challenger``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = model_name or settings.model_name
    use_tracking(settings)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelLoadError(
            f"no model '{name}@{alias}' in the registry at {tracking_uri(settings)}: "
            f"{exc.message.splitlines()[0]}"
        ) from None
    return load_version(name, str(mv.version), settings)


def load_version(name: str, version: str, settings: Settings | None = None) -> LeadModel:
    """One registered version, copied to the local cache first."""
    import mlflow

    settings = settings or get_settings()
    use_tracking(settings)
    mv = mlflow.MlflowClient().get_model_version(name, version)
    target = Path(settings.cache_dir) / name / str(mv.version)
    if not (target / "MLmodel").exists():
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(tmp))
        except Exception as exc:  # any transport or storage failure means: no model, use the rules
            raise ModelLoadError(f"could not download model version {mv.version}: {exc}") from None
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return LeadModel.load(_model_folder(target), version=str(mv.version))


def _model_folder(pyfunc_dir: Path) -> Path:
    """The LightGBM text model folder that the registered pyfunc carries as its artifact."""
    import yaml

    try:
        mlmodel = yaml.safe_load((pyfunc_dir / "MLmodel").read_text())
        rel = mlmodel["flavors"]["python_function"]["artifacts"][ARTIFACT]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{pyfunc_dir}: not a leadscore model (no '{ARTIFACT}' artifact: {exc})") from None
    return pyfunc_dir / rel
