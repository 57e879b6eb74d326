"""Run folders for `leadscore retrain --data` / `train --data`, kept apart from the DVC pipeline's outputs.

The DVC pipeline (dvc.yaml) owns artifacts/dataset, artifacts/model, metrics/, plots/ and the model
card; a retrain by hand that wrote there would make the next `dvc repro` (`make serve`) see changed
outputs and retrain the demo over the user's model. So a chain run writes ``runs/<UTC time>-<name>/``
by default, and a path that dvc.yaml tracks is refused unless the command runs as a DVC stage.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

RUNS_DIR = Path("runs")
# DVC (>= 3) sets this for every stage command it runs (dvc/stage/run.py, prepare_kwargs); nothing else does.
DVC_STAGE_ENV = "DVC_STAGE"
_OUTPUT_KINDS = ("outs", "metrics", "plots")


@dataclass(frozen=True)
class RunPaths:
    """Where one chain run writes each of its products."""

    dataset: Path
    model: Path
    metrics: Path
    plots: Path
    card: Path
    folder: Path | None = None  # the run folder, when the paths were not all given explicitly

    def written(self) -> dict[str, Path]:
        return {"training set": self.dataset, "model folder": self.model,
                "metrics file": self.metrics, "plots folder": self.plots, "model card": self.card}


def run_name(data: str) -> str:
    """A short, file-safe name of an export: its folder's or database file's name."""
    text = str(data).rstrip("/\\")
    if "://" in text:
        text = text.split("://", 1)[1].split("?", 1)[0]
    stem = Path(text).stem or Path(text).name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "run"


def new_run_folder(data: str, now: datetime | None = None, base: Path = RUNS_DIR) -> Path:
    """``runs/<UTC timestamp>-<export name>``, not existing yet (a suffix when two start in one second)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    folder = base / f"{stamp}-{run_name(data)}"
    n = 2
    while folder.exists():
        folder = base / f"{stamp}-{run_name(data)}-{n}"
        n += 1
    return folder


def run_paths(folder: Path, dataset: Path | None = None, model: Path | None = None) -> RunPaths:
    """The products of a chain run inside ``folder``; an explicit dataset or model folder wins."""
    return RunPaths(dataset=dataset or folder / "dataset", model=model or folder / "model",
                    metrics=folder / "evaluate.json", plots=folder / "plots", card=folder / "model_card.md",
                    folder=folder)


def find_dvc_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding a dvc.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return None


def _lookup(tree: dict, dotted: str):
    node = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def dvc_outputs(root: Path) -> dict[Path, str]:
    """Every path dvc.yaml under ``root`` declares as a stage's ``outs``, ``metrics`` or ``plots``
    (and top-level ``metrics``/``plots`` files) → what declares it, e.g. ``stage 'train' (outs)``.

    ``${a.b}`` is filled from the params.yaml beside dvc.yaml, as DVC does; paths are absolute.
    """
    spec = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    params_file = root / "params.yaml"
    params = (yaml.safe_load(params_file.read_text()) or {}) if params_file.is_file() else {}

    def resolve(entry) -> str | None:
        text = next(iter(entry)) if isinstance(entry, dict) else entry
        if not isinstance(text, str):
            return None
        for key in re.findall(r"\$\{\s*([^}]+?)\s*\}", text):
            value = _lookup(params, key)
            if value is None:
                return None  # a variable this reader cannot fill: leave it to DVC, claim nothing
            text = text.replace("${" + key + "}", str(value)).replace("${ " + key + " }", str(value))
        return text

    found: dict[Path, str] = {}
    for name, stage in (spec.get("stages") or {}).items():
        for kind in _OUTPUT_KINDS:
            for entry in (stage or {}).get(kind) or []:
                path = resolve(entry)
                if path:
                    found.setdefault((root / path).resolve(), f"stage '{name}' ({kind})")
    for kind in ("metrics", "plots"):
        for entry in spec.get(kind) or []:
            path = resolve(entry)
            if path and not path.startswith(("$", "{")):
                found.setdefault((root / path).resolve(), f"top-level {kind}")
    return found


@dataclass(frozen=True)
class Collision:
    """A path a run would write that is, lies inside, or holds an output dvc.yaml tracks."""

    what: str
    given: Path
    relation: str  # "is", "lies inside" or "holds"
    tracked: Path
    declared_by: str


def tracked_collisions(paths: dict[str, Path], root: Path | None = None) -> list[Collision]:
    """The paths (what → path) that are, lie inside, or hold a DVC-tracked output; empty outside
    a DVC project."""
    root = root or find_dvc_root()
    if root is None:
        return []
    outputs = dvc_outputs(root)
    hits = []
    for what, given in paths.items():
        target = Path(given).resolve()
        for tracked, by in outputs.items():
            relation = ("is" if target == tracked else "lies inside" if tracked in target.parents
                        else "holds" if target in tracked.parents else None)
            if relation:
                hits.append(Collision(what, Path(given), relation, tracked, by))
                break
    return hits


def inside_dvc_stage() -> bool:
    """True when DVC runs this command as a pipeline stage (it may write the stage's outputs)."""
    return bool(os.environ.get(DVC_STAGE_ENV))


def refusal(hits: list[Collision], root: Path) -> str:
    """One message naming each refused path, what tracks it, and what to do instead."""
    parts = [f"the {h.what} {h.given} {h.relation} "
             f"{h.tracked.relative_to(root) if h.tracked.is_relative_to(root) else h.tracked}, "
             f"which {root / 'dvc.yaml'} tracks ({h.declared_by})" for h in hits]
    return ("refusing to write over the DVC pipeline's outputs: " + "; ".join(parts) + ". The next `dvc repro` "
            "(`make serve`) would see them changed and retrain the demo over this model. Leave these options "
            f"out to write a run folder of its own ({RUNS_DIR}/<UTC time>-<export name>/), or give --run-dir / "
            "paths outside the pipeline's outputs.")
