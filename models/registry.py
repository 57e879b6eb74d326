"""The MLflow model registry: where trained models live, and how scorers get them back."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from leadscore.config.settings import Settings, get_settings, tracking_uri
from leadscore.models.lgbm import LeadModel, ModelLoadError, folder_digest

# The registered pyfunc's artifact that holds the LightGBM text model folder.
ARTIFACT = "model_dir"


def use_tracking(settings: Settings | None = None) -> str:
    """Point MLflow at the project's tracking store (called by commands, never at import)."""
    import mlflow

    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


# Model-version tag that registration sets: the SHA-256 of the model folder (models.lgbm.folder_digest).
DIGEST_TAG = "model_sha256"
# Beside each cached version: the digest it was verified against when it was downloaded.
CHECKSUM_FILE = "leadscore.sha256"
# Registry answers that mean "there is no such model", as opposed to "the registry cannot be asked".
_MISSING = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
# A check run on a verified model folder before LightGBM reads it here: None, or why it is refused.
Check = Callable[[Path], str | None]


class ModelRefused(ModelLoadError):
    """The files are the registered ones, but the model failed the check run before loading them."""


def load_champion(settings: Settings | None = None, check: Check | None = None) -> LeadModel:
    """The model behind the registry alias (``champion``), through the checksummed local cache.

    Raises ModelLoadError with the reason when there is none or it cannot be read (ModelRefused
    when ``check`` refuses it).
    """
    settings = settings or get_settings()
    return load_alias(settings.model_alias, settings, check=check)


def load_alias(alias: str, settings: Settings | None = None, model_name: str | None = None,
               check: Check | None = None) -> LeadModel:
    """The model behind any alias of the registered model (``champion``, ``challenger``).

    When the registry cannot be reached (a tracking server down), the version this alias last
    pointed to is loaded from the local cache, after its checksum is verified; ``origin`` on the
    returned model says which happened. When the registry answers that there is no such model,
    nothing stale is used."""
    import mlflow
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = model_name or settings.model_name
    use_tracking(settings)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        first = exc.message.splitlines()[0][:300]
        if exc.error_code in _MISSING:
            raise ModelLoadError(f"no model '{name}@{alias}' in the registry at {tracking_uri(settings)}: {first}") from None
        return _load_cached_alias(name, alias, settings, f"registry unreachable ({first})", check)
    except Exception as exc:  # transport errors that MLflow does not wrap
        return _load_cached_alias(name, alias, settings, f"registry unreachable ({type(exc).__name__}: {exc})"[:300],
                                  check)
    model = load_version(name, str(mv.version), settings, expected_digest=(mv.tags or {}).get(DIGEST_TAG), check=check)
    _pointer(settings, name, alias).write_text(json.dumps({"version": str(mv.version)}))
    return model


def load_version(
    name: str, version: str, settings: Settings | None = None, expected_digest: str | None = None,
    check: Check | None = None,
) -> LeadModel:
    """One registered version, downloaded once into the local cache and verified by its SHA-256.

    ``expected_digest`` is the registry's ``model_sha256`` tag (looked up when not given). A
    cached copy whose files no longer match the digest it was verified against is refused."""
    import mlflow

    settings = settings or get_settings()
    use_tracking(settings)
    if expected_digest is None:
        mv = mlflow.MlflowClient().get_model_version(name, version)
        expected_digest = (mv.tags or {}).get(DIGEST_TAG)
    target = Path(settings.cache_dir) / name / str(version)
    if not (target / CHECKSUM_FILE).exists():
        # Several workers may download the same version at once: each into its own folder.
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not (target / CHECKSUM_FILE).exists():
            shutil.rmtree(target, ignore_errors=True)  # a copy without a checksum (older cache) is not trusted
        tmp = Path(tempfile.mkdtemp(prefix=f"{version}.partial-", dir=target.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp))
        except Exception as exc:  # any transport or storage failure means: no model, use the rules
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelLoadError(f"could not download model version {version}: {exc}") from None
        found = folder_digest(_model_folder(tmp))
        if expected_digest and found != expected_digest:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelLoadError(
                f"model version {version} failed its checksum after download: expected SHA-256 "
                f"{expected_digest[:16]}…, found {found[:16]}…")
        (tmp / CHECKSUM_FILE).write_text(json.dumps({"sha256": found, "registry_tag": bool(expected_digest)}))
        try:
            tmp.rename(target)
        except OSError:  # another worker finished first; its verified copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    return _load_verified(target, str(version), expected_digest, origin="registry", check=check)


def _pointer(settings: Settings, name: str, alias: str) -> Path:
    return Path(settings.cache_dir) / name / f"@{alias}.json"


def _load_cached_alias(name: str, alias: str, settings: Settings, why: str, check: Check | None = None) -> LeadModel:
    pointer = _pointer(settings, name, alias)
    try:
        version = str(json.loads(pointer.read_text())["version"])
    except (OSError, ValueError, KeyError):
        raise ModelLoadError(f"{why}, and no cached '{name}@{alias}' in {settings.cache_dir}") from None
    return _load_verified(Path(settings.cache_dir) / name / version, version, None, origin=f"cache: {why}", check=check)


def _load_verified(target: Path, version: str, expected_digest: str | None, origin: str,
                   check: Check | None = None) -> LeadModel:
    """Load a cached version after checking its files against the digest recorded at download."""
    try:
        recorded = json.loads((target / CHECKSUM_FILE).read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        raise ModelLoadError(f"cached model version {version} in {target} has no readable checksum") from None
    if expected_digest and recorded != expected_digest:
        raise ModelLoadError(f"cached model version {version} was verified against another checksum than the registry's")
    folder = _model_folder(target)
    found = folder_digest(folder)
    if found != recorded:
        raise ModelLoadError(
            f"cached model version {version} fails its checksum (expected SHA-256 {recorded[:16]}…, "
            f"found {found[:16]}…): the files in {folder} changed after download")
    why = check(folder) if check else None
    if why:
        raise ModelRefused(f"model version {version} refused: {why}")
    model = LeadModel.load(folder, version=version)
    model.origin, model.digest = origin, found
    return model


def _model_folder(pyfunc_dir: Path) -> Path:
    """The LightGBM text model folder that the registered pyfunc carries as its artifact."""
    import yaml

    try:
        mlmodel = yaml.safe_load((pyfunc_dir / "MLmodel").read_text())
        rel = mlmodel["flavors"]["python_function"]["artifacts"][ARTIFACT]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{pyfunc_dir}: not a leadscore model (no '{ARTIFACT}' artifact: {exc})") from None
    return pyfunc_dir / rel
