"""The installed layout: one namespace, configuration at the bottom, imports one way, no circles.

The import graph is read from the source with ``ast`` (every import, also those inside functions,
so a lazy import cannot hide a circle); module names come from pyproject's package-dir mapping,
the one place that says which folder installs as which package.
"""

from __future__ import annotations

import ast
import graphlib
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SETUP = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
OLD_TOPS = ("features", "models", "training", "serving")
# The floors (STYLE.md, "imports run downward only"): a room may import only rooms below it.
FLOORS = {
    "leadscore.config": 0,
    "leadscore.features": 1,
    "leadscore.models": 2,
    "leadscore.serving": 3,
    "leadscore.training": 3,
    "leadscore": 4,  # the app: cli, demo
}
# The one sideways edge: monitoring reads the score ledger the service writes (serving never imports training).
SIDEWAYS = {("leadscore.training", "leadscore.serving.ledger")}
SKIP_DIRS = {".venv", ".git", "build", "dist", "__pycache__", ".dvc", "data", "artifacts", "mlartifacts", "mlruns"}


def _modules() -> dict[str, Path]:
    """Every module of the installed namespace → its source file, by the package-dir mapping."""
    out: dict[str, Path] = {}
    for package, folder in SETUP["package-dir"].items():
        base = ROOT / folder
        for f in base.rglob("*.py"):
            rel = f.relative_to(base).with_suffix("")
            if "__pycache__" in rel.parts:
                continue
            name = ".".join((package, *rel.parts)).removesuffix(".__init__")
            out.setdefault(name, f)
    return out


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """The leadscore modules ``module`` imports (``from pkg import submodule`` counts as the submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
    return {_owner(n) for n in found if n == "leadscore" or n.startswith("leadscore.")} - {module}


def _owner(name: str) -> str:
    """The module a dotted import name lands in (``leadscore.models.base.Reason`` → ``leadscore.models.base``)."""
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


def _room(module: str) -> str:
    return max((r for r in FLOORS if module == r or module.startswith(r + ".")), key=len)


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def test_the_mapping_covers_every_room():
    assert {m.split(".")[1] for m in MODULES if m.count(".")} >= {"config", *OLD_TOPS}
    for name in ("leadscore.config.params", "leadscore.config.settings", "leadscore.features.spec",
                 "leadscore.models.decision", "leadscore.serving.service", "leadscore.training.train", "leadscore.cli"):
        assert name in MODULES, f"{name} is not where the mapping puts it"


def test_no_import_cycle_between_modules():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' → '.join(exc.args[1])}")


def test_imports_run_downward_only():
    wrong = []
    for module, targets in GRAPH.items():
        for target in targets:
            a, b = _room(module), _room(target)
            if a == b or FLOORS[b] < FLOORS[a] or (a, target) in SIDEWAYS:
                continue
            wrong.append(f"{module} ({a}, floor {FLOORS[a]}) imports {target} ({b}, floor {FLOORS[b]})")
    assert not wrong, "imports that do not run downward:\n" + "\n".join(sorted(wrong))


def test_configuration_and_the_package_root_import_nothing_of_leadscore(tmp_path):
    assert not GRAPH["leadscore"], GRAPH["leadscore"]
    for module, targets in GRAPH.items():
        if _room(module) == "leadscore.config":
            assert all(t.startswith("leadscore.config") for t in targets), (module, targets)
    # A negative control: the check sees an import inside a function.
    probe = tmp_path / "layout_probe.py"
    probe.write_text("def f():\n    from leadscore.models.base import score_leads\n")
    assert _imports(probe, "leadscore.config.probe") == {"leadscore.models.base"}


def _python_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in filenames:
            if name.endswith(".py"):
                yield Path(dirpath) / name


def test_every_import_uses_the_namespace():
    """Code, tests, benches and scripts never import the old top-level names."""
    bare = []
    for f in _python_files():
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            bare += [f"{f.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in OLD_TOPS]
    assert not bare, "imports outside the namespace:\n" + "\n".join(bare)


def test_docs_and_build_files_name_the_namespace():
    # An import as code is written (a line of its own or in backticks), or a service path.
    pattern = re.compile(r"(?:^\s*|`)(?:from|import) (?:features|models|training|serving)\b"
                         r"|(?<![\w./])(?:features|models|training|serving)\.\w+:\w+", re.M)
    texts = [ROOT / "README.md", ROOT / "bentofile.yaml", ROOT / "dvc.yaml", ROOT / "Makefile",
             *(ROOT / "docs").glob("*.md"), *(ROOT / "bench").glob("*.md")]
    found = [f"{t.relative_to(ROOT)}: {m.group(0)}" for t in texts if t.exists() for m in pattern.finditer(t.read_text())]
    assert not found, found
    assert yaml.safe_load((ROOT / "bentofile.yaml").read_text())["service"].startswith("leadscore.serving.")


def test_the_repositorys_params_yaml_is_the_packaged_file():
    packaged = ROOT / "leadscore" / "config" / "params.yaml"
    assert (ROOT / "params.yaml").resolve() == packaged.resolve()
    assert "leadscore.config" in SETUP["package-data"] and "params.yaml" in SETUP["package-data"]["leadscore.config"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the repository (the build leaves nothing in the work tree)."""
    src = tmp_path_factory.mktemp("src") / "leadscore"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.egg-info", "tests", "bench", "*.db",
                                                            ".leadscore-cache", ".pytest_cache", ".env"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("leadscore-*.whl")
    return whl


def test_the_wheel_holds_only_the_leadscore_namespace(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
        assert tops == {"leadscore"}, tops
        for rel in ("leadscore/features/spec.py", "leadscore/models/decision.py", "leadscore/serving/service.py",
                    "leadscore/training/train.py", "leadscore/config/settings.py", "leadscore/models/default_sla.yaml"):
            assert rel in names, f"{rel} missing from the wheel"
        assert z.read("leadscore/config/params.yaml") == (ROOT / "params.yaml").read_bytes()


def test_installed_into_a_fresh_venv_only_leadscore_imports(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The dependencies come from this venv's site-packages as a plain path: its .pth files (the
    # editable install's finder among them) are not run, so nothing of the work tree is reachable.
    fresh_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    Path(fresh_site, "zz_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    script = """
import importlib, importlib.util, json, pathlib, sys
tops = {n: importlib.util.find_spec(n) is not None for n in ("features", "models", "training", "serving")}
mods = ["leadscore.config.params", "leadscore.config.settings", "leadscore.features.build", "leadscore.models.base",
        "leadscore.serving.service", "leadscore.training.train", "leadscore.cli"]
files = {m: importlib.import_module(m).__file__ for m in mods}
from leadscore.config.params import load_params
p = load_params()
from leadscore.models.rules import load_rules
load_rules(None)  # the packaged SLA rules, found as package data of leadscore.models
print(json.dumps({"tops": tops, "files": files, "stopping": p.train.early_stopping_rounds}))
"""
    run = subprocess.run([str(py), "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LEADSCORE_PARAMS_PATH")})
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert not any(seen["tops"].values()), f"importable outside the namespace: {seen['tops']}"
    outside = {m: f for m, f in seen["files"].items() if not f.startswith(fresh_site)}
    assert not outside, f"imported from outside the fresh venv: {outside}"
    assert seen["stopping"] == yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["early_stopping_rounds"]
    cli = subprocess.run([str(env_dir / "bin" / "leadscore"), "--help"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 0 and "demo-data" in cli.stdout, cli.stderr[-2000:]
