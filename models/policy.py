"""Which scorer answers: the champion model when it loads, otherwise the SLA rules — with the reason.

A reason is ``"<code>: <cause>"``: the code is one of ``FALLBACK_REASONS`` (what integrators branch
on), the cause a short sentence for people. Causes come from MLflow, LightGBM and the file system,
so ``fallback`` scrubs URLs, hosts and file paths out of them: a score response is no place for
the registry's address or the server's folders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from leadscore.config.params import FeatureParams
from leadscore.config.settings import Settings, get_settings
from leadscore.models.base import Scorer
from leadscore.models.lgbm import LeadModel, ModelLoadError
from leadscore.models.registry import ModelRefused, load_champion
from leadscore.models.rules import RuleScorer, load_rules

# Every reason the rules can answer for, in one place (the API's fallback_reason starts with one).
FALLBACK_REASONS: dict[str, str] = {
    "no_champion": "the registry has no model behind the serving alias",
    "registry_unavailable": "the registry could not be reached or the model not downloaded, and no verified copy is cached",
    "model_checksum": "the model's files do not match the SHA-256 recorded for them",
    "model_invalid": "the model failed its check before loading: unreadable, malformed trees, a crash or hang, or "
                     "its canary rows predict other values than at training",
    "model_unavailable": "the model could not be loaded for another reason",
    "model_failed_check": "the model loaded but gave an impossible answer for the test lead",
    "deadline": "the model did not answer this request within the deadline",
    "model_error": "the model raised an error on this request",
}
MAX_CAUSE = 240

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*:/+(?:[^\s'\"<>)]*[^\s'\"<>).,:;])?")
_HOST = re.compile(r"\b(host|hostname|url|path|file|dir|uri)=['\"]?[^'\"\s,)]*['\"]?", re.IGNORECASE)
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_HOST_PORT = re.compile(r"\b[A-Za-z][\w-]*(?:\.[\w-]+)+:\d{2,5}\b")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\[^\s'\"<>)]*")
# A word with a slash in it: /abs/path, rel/path, ~/x, ./x — but not "a/b" fractions of digits.
_PATH = re.compile(r"(?:(?<![\w<])(?:~|\.{1,2})?/?(?:[\w.@+-]+/)+[\w.@+-]*|(?<![\w<])/[\w.@+-]+)(?:\?[^\s'\")]*)?")


def scrub(text: str) -> str:
    """``text`` on one line, without URLs, hosts or file paths (each becomes ``<url>``, ``<host>`` or
    ``<path>``), at most MAX_CAUSE characters (its beginning and its end)."""
    text = " ".join(str(text).split())
    text = _URL.sub("<url>", text)
    text = _HOST.sub(lambda m: f"{m.group(1)}=<{m.group(1).lower()}>", text)
    text = _WINDOWS_PATH.sub("<path>", text)
    text = _IP.sub("<host>", text)
    text = _HOST_PORT.sub("<host>", text)
    text = _PATH.sub(lambda m: m.group(0) if re.fullmatch(r"[\d/]+", m.group(0)) else "<path>", text)
    if len(text) <= MAX_CAUSE:
        return text
    # The middle goes: a long cause is a wrapped exception, and its end says what came of it.
    tail = MAX_CAUSE // 3
    return text[: MAX_CAUSE - tail - 1] + "…" + text[-tail:]


def fallback(code: str, cause: str) -> str:
    """The reason the rules answer: ``"<code>: <scrubbed cause>"``; ``code`` must be in FALLBACK_REASONS."""
    if code not in FALLBACK_REASONS:
        raise ValueError(f"fallback reason {code!r} is not one of {', '.join(FALLBACK_REASONS)}")
    return f"{code}: {scrub(cause)}"


def reason_code(reason: str | None) -> str | None:
    """The code a reason starts with (None for no reason or one from before the vocabulary)."""
    code = (reason or "").partition(":")[0]
    return code if code in FALLBACK_REASONS else None


def load_failure(exc: Exception) -> str:
    """The reason for a model that did not load (``ModelLoadError`` from the registry or a folder)."""
    text = str(exc)
    if isinstance(exc, ModelRefused):
        code = "model_invalid"
    elif not isinstance(exc, ModelLoadError):
        code, text = "model_unavailable", f"{type(exc).__name__}: {text}"
    elif text.startswith("no model '"):
        code = "no_champion"
    elif "checksum" in text:
        code = "model_checksum"
    elif "registry unreachable" in text or text.startswith("could not download"):
        code = "registry_unavailable"
    else:  # what LeadModel.load refuses: not a text booster, no metadata, LightGBM's own error
        code = "model_invalid"
    return fallback(code, text)


def rule_scorer(feature_params: FeatureParams, settings: Settings | None = None) -> RuleScorer:
    settings = settings or get_settings()
    return RuleScorer(load_rules(settings.rules_path), feature_params)


def primary_scorer(
    feature_params: FeatureParams, settings: Settings | None = None, model_dir: Path | str | None = None,
    check: Callable[[Path], str | None] | None = None,
) -> tuple[Scorer, str | None]:
    """The model (from ``model_dir`` or the registry alias) or, if it cannot load, the rules and why.

    ``check(folder)`` runs on the model folder before LightGBM reads it in this process (after the
    checksum, for a registry model); a reason from it refuses the model (``model_invalid``)."""
    settings = settings or get_settings()
    try:
        if model_dir:
            why = check(Path(model_dir)) if check else None
            if why:
                raise ModelRefused(why)
            model = LeadModel.load(model_dir)
        else:
            model = load_champion(settings, check=check)
        return model, None
    except Exception as exc:  # noqa: BLE001 — any failure to get the model means: the rules, saying why
        return rule_scorer(feature_params, settings), load_failure(exc)
