"""`bentoml build` makes a Bento that `bentoml containerize` can turn into an image (docs/deploy.md).

No Docker engine runs here, so containerizing and running the image are not tested. These tests
check what the image would be built from: the Bento's files, its Dockerfile and its pinned
requirements, and that the Bento's code imports with nothing but those requirements.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "serving" / "requirements.txt"
# What the Bento's src/ may hold: the packages serving imports, the parameters, the build file.
ALLOWED_TOP = {"leadscore", "bentofile.yaml"}
DEV_ONLY = {"dvc", "pyspark", "locust", "schemathesis", "pytest", "ibis-framework", "duckdb", "optuna", "shap", "typer"}
# Imported by a library inside try/except when installed (present in the dev venv, not needed):
# mlflow.types.schema → pyspark (→ py4j); numba.core.errors → colorama; httpx._decoders → brotli;
# mlflow.genai → tqdm; fastapi.responses → orjson.
OPTIONAL_IMPORTS = {"pyspark", "py4j", "colorama", "brotli", "tqdm", "orjson"}
# Copied from the repository into the build context, never into the Bento.
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", ".dvc", "data", "mlruns", "mlartifacts", "artifacts", "metrics",
                                   "plots", ".leadscore-cache", ".pytest_cache", "__pycache__", "*.db", ".env")
PLANTED_SECRET = "planted-secret-" + os.urandom(6).hex()
PLANTED = {  # what a working copy holds that must not ship
    ".env": f"LEADSCORE_API_KEYS={PLANTED_SECRET}\nLEADSCORE_PSEUDONYM_KEY={PLANTED_SECRET}\n",
    "data/demo/leads.csv": "lead_id,created_at\nL1,2026-01-01\n",
    "mlflow.db": "",
    "ledger.db": "",
    "mlruns/0/meta.yaml": "name: Default\n",
    "mlartifacts/1/model.lgb": "tree\n",
    ".leadscore-cache/lead-scoring/1/model.lgb": "tree\n",
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    "serving/__pycache__/service.cpython-311.pyc": "",
}


def _pins(path: Path) -> dict[str, tuple[str, str]]:
    """Canonical name → (line as written, version) of every ``name==version`` line."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        spec = str(req.specifier)
        assert spec.startswith("==") and "," not in spec, f"{path.name}: {raw!r} is not pinned with =="
        pins[canonicalize_name(req.name)] = (line, spec[2:])
    return pins


def _closure(direct: list[Requirement]) -> set[str]:
    """The direct requirements and everything they need on this platform, from installed metadata."""
    seen: dict[str, set[str]] = {}
    stack = list(direct)
    while stack:
        req = stack.pop()
        key = canonicalize_name(req.name)
        if key in seen and set(req.extras) <= seen[key]:
            continue
        seen[key] = seen.get(key, set()) | set(req.extras)
        for spec in md.requires(req.name) or []:
            dep = Requirement(spec)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (seen[key] or {""})):
                stack.append(dep)
    return set(seen)


def test_serving_requirements_are_the_tested_closure():
    """serving/requirements.txt: every version as in constraints.txt, nothing missing, nothing extra."""
    constraints = _pins(ROOT / "constraints.txt")
    text = REQUIREMENTS.read_text()
    pins = _pins(REQUIREMENTS)
    # The direct requirements are the lines that say why (a trailing comment).
    direct = [Requirement(raw.split(" #", 1)[0].strip()) for raw in text.splitlines()
              if " #" in raw and not raw.lstrip().startswith("#")]
    assert direct, f"{REQUIREMENTS}: no direct requirements (lines with a trailing '# why')"
    wrong = {k: (v, constraints.get(k, (None, "absent"))[1]) for k, (_, v) in pins.items()
             if constraints.get(k, (None, None))[1] != v}
    assert not wrong, f"{REQUIREMENTS.name} pins differ from constraints.txt (found, expected): {wrong}"
    closure = _closure(direct)
    missing, extra = sorted(closure - set(pins)), sorted(set(pins) - closure)
    direct_keys = {canonicalize_name(r.name) for r in direct}
    expected = "\n".join(constraints[k][0] for k in sorted(closure - direct_keys) if k in constraints)
    assert not missing and not extra, (
        f"{REQUIREMENTS.name} is not the closure of its direct requirements: add {missing}, remove {extra}. "
        f"The second block should read:\n{expected}")
    assert not (set(pins) & DEV_ONLY), f"dev-only tools in the serving image: {sorted(set(pins) & DEV_ONLY)}"


@pytest.fixture(scope="module")
def bento(tmp_path_factory) -> tuple[str, Path, subprocess.CompletedProcess]:
    """`bentoml build` of a copy of the repository with secrets and data planted in it, offline."""
    ctx = tmp_path_factory.mktemp("ctx") / "leadscore"
    shutil.copytree(ROOT, ctx, ignore=SKIP_COPY)
    for rel, content in PLANTED.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(content)
    home = tmp_path_factory.mktemp("bentoml_home")
    # BentoML 1.4.39 pip-installs uv into the running venv when none is on PATH, even when it will
    # not lock. A stub on PATH prevents that and records any call (there must be none).
    stub_dir = tmp_path_factory.mktemp("uv_stub")
    called = stub_dir / "called"
    stub = stub_dir / "uv"
    stub.write_text(f'#!/bin/sh\necho "$@" >> "{called}"\necho "bentoml build called uv" >&2\nexit 97\n')
    stub.chmod(0o755)
    dead = "http://127.0.0.1:9"  # any download attempt fails instead of reaching an index
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "OMP_WAIT_POLICY": "PASSIVE",
           "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}", "PIP_NO_INDEX": "1", "UV_OFFLINE": "1",
           "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead, "NO_PROXY": "", "no_proxy": ""}
    # What `make bento` runs: the namespace laid out as installed, then `bentoml build` of that context.
    laid = subprocess.run([sys.executable, "scripts/bento_context.py", "build/bento"], cwd=ctx, env=env,
                          capture_output=True, text=True, timeout=120)
    assert laid.returncode == 0, laid.stderr[-3000:]
    proc = subprocess.run([str(Path(sys.executable).with_name("bentoml")), "build", "--output", "tag", "build/bento"],
                          cwd=ctx, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"bentoml build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert not called.exists(), f"bentoml build called uv: {called.read_text()}"
    found = re.search(r"__tag__:(\S+)", proc.stdout)
    assert found, f"bentoml build printed no tag: {proc.stdout[-2000:]}"
    tag = found.group(1)
    name, version = tag.split(":")
    return tag, home / "bentos" / name / version, proc


def test_build_makes_a_bento_of_the_service(bento):
    tag, path, _ = bento
    assert tag.startswith("leadscore:")
    meta = yaml.safe_load((path / "bento.yaml").read_text())
    assert meta["service"] == "leadscore.serving.service:LeadScoring"
    assert meta["image"]["python_version"] == "3.11"
    envs = {e["name"]: e["value"] for e in meta["envs"]}
    assert envs["LEADSCORE_CACHE_DIR"] == "/home/bentoml/cache"
    src = path / "src"
    for rel in ("leadscore/serving/service.py", "leadscore/serving/schemas.py", "leadscore/models/registry.py",
                "leadscore/features/online.py", "leadscore/config/settings.py", "leadscore/__init__.py"):
        assert (src / rel).is_file(), f"{rel} missing from the Bento"
    # The parameters and the packaged SLA rules, byte for byte.
    assert (src / "leadscore/config/params.yaml").read_bytes() == (ROOT / "params.yaml").read_bytes()
    assert (src / "leadscore/models/default_sla.yaml").read_bytes() == (ROOT / "models/default_sla.yaml").read_bytes()


def test_bento_holds_no_tests_data_stores_or_secrets(bento):
    _, path, _ = bento
    src = path / "src"
    assert {p.name for p in src.iterdir()} <= ALLOWED_TOP, sorted(p.name for p in src.iterdir())
    names = [p.relative_to(src).as_posix() for p in src.rglob("*")]
    for bad in ("tests/", "leadscore/training/", "data/", ".venv/", "mlruns/", "mlartifacts/", ".leadscore-cache/", "__pycache__/"):
        assert not [n for n in names if n.startswith(bad) or f"/{bad}" in n], f"{bad} in the Bento"
    assert not [n for n in names if n.endswith((".env", ".db", ".pyc", ".lgb"))], names
    assert not (src / "leadscore/cli.py").exists()  # needs typer and training/, not in the image
    assert not (src / "leadscore/demo.py").exists()
    secrets = [PLANTED_SECRET, *(v for k, v in os.environ.items() if k in ("LEADSCORE_API_KEYS", "LEADSCORE_PSEUDONYM_KEY") and v)]
    for f in path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            leaked = [s for s in secrets if s.encode() in data]
            assert not leaked, f"a secret is in {f.relative_to(path)}"
    for text in ((path / "bento.yaml").read_text(), (path / "env/docker/Dockerfile").read_text()):
        for name in ("LEADSCORE_API_KEYS", "LEADSCORE_PSEUDONYM_KEY", "LEADSCORE_LEDGER_URL", "MLFLOW_TRACKING_URI"):
            assert name not in text, f"{name} is baked into the Bento; it is set per deployment"


def test_dockerfile_builds_python_311_from_the_pinned_requirements(bento):
    _, path, _ = bento
    dockerfile = (path / "env/docker/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M), dockerfile[:800]
    assert "--python 3.11" in dockerfile
    assert re.search(r"pip install -r \S*env/python/requirements\.txt", dockerfile), dockerfile
    assert "ENV LEADSCORE_CACHE_DIR=" in dockerfile
    assert (path / "env/docker/entrypoint.sh").is_file()
    installed = _pins(path / "env/python/requirements.txt")
    constraints = _pins(ROOT / "constraints.txt")
    for name in ("lightgbm", "bentoml", "numpy", "pandas", "mlflow", "scikit-learn", "numba"):
        assert installed[name][1] == constraints[name][1], (name, installed[name], constraints[name])
    assert {k: v for k, (_, v) in installed.items()} == {k: v for k, (_, v) in _pins(REQUIREMENTS).items()}
    assert not (set(installed) & DEV_ONLY)


def test_bento_code_imports_with_only_its_requirements(bento):
    """Every module in the Bento imports from the Bento itself, using no package outside its requirements."""
    _, path, _ = bento
    src = path / "src"
    modules = sorted(p.relative_to(src).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                     for p in src.rglob("*.py"))
    script = f"""
import importlib, json, os, sys
sys.path = [p for p in sys.path if os.path.realpath(p or ".") != {str(ROOT)!r}]
sys.path.insert(0, {str(src)!r})
for m in {modules!r} + ["mlflow", "mlflow.artifacts"]:  # models/registry.py imports mlflow inside functions
    importlib.import_module(m)
first = {{n: getattr(m, "__file__", None) for n, m in sys.modules.items()
          if n.split(".")[0] in ("serving", "models", "features", "leadscore", "training")}}
assert not [n for n in sys.modules if n.split(".")[0] in ("serving", "models", "features", "training")], "outside the namespace"
tops = sorted({{n.split(".")[0] for n in sys.modules if not n.startswith("_")}})
print(json.dumps({{"first": first, "tops": tops}}))
"""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "BENTOML_DO_NOT_TRACK": "True"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=src, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    outside = {n: f for n, f in seen["first"].items() if f and not f.startswith(str(src))}
    assert not outside, f"imported from outside the Bento (missing from bentofile.yaml include): {outside}"
    dists = md.packages_distributions()
    used = {canonicalize_name(d) for top in seen["tops"] for d in dists.get(top, [])}
    used -= {"leadscore"} | {canonicalize_name(o) for o in OPTIONAL_IMPORTS}
    missing = sorted(used - set(_pins(REQUIREMENTS)))
    assert not missing, f"the Bento's code imports packages serving/requirements.txt lacks: {missing}"
