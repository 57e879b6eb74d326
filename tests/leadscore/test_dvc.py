"""DVC hygiene: dvc.lock matches the tree, generated folders stay out of git, plots render offline.

`dvc status` runs in a temporary copy of the git files (no outputs, no data/demo, no network), as on a
fresh clone; scripts/dvc_lock_check.py is the same check for the command line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs the git checkout (the lock check copies git's files)")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_check = _script("dvc_lock_check")


@pytest.fixture()
def copy(tmp_path) -> Path:
    return lock_check.prepare_copy(ROOT, tmp_path / "repo")


def test_dvc_lock_is_current():
    """Every git-tracked dep's md5, every params value and every command in dvc.lock matches the tree
    (regenerate with `dvc repro` / `dvc commit`; `scripts/dvc_lock_check.py` lists what is stale)."""
    stale = lock_check.stale_entries(ROOT)
    assert not stale, f"dvc.lock is stale in {len(stale)} entries:\n" + "\n".join(stale)


def _first_dep_file(copy: Path, stale: list[str]) -> tuple[str, str]:
    """(stage, path) of a git-tracked file dep that is not stale yet."""
    stages = yaml.safe_load((copy / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for dep in stage.get("deps") or []:
            if (copy / dep).is_file() and f"{name}: dep {dep} modified" not in stale:
                return name, dep
    pytest.skip("every file dep is stale already")


def test_lock_check_names_a_changed_dep_and_param(copy):
    before = lock_check.stale_in(copy)
    stage, dep = _first_dep_file(copy, before)
    with open(copy / dep, "a") as f:
        f.write("\n# changed\n")
    params_file = copy / "params.yaml"
    values = yaml.safe_load(params_file.read_text())
    seed = values["data"]["demo_seed"]
    text = (copy / "leadscore/config/params.yaml").read_text()
    (copy / "leadscore/config/params.yaml").write_text(
        re.sub(r"(\n\s+demo_seed:\s*)\d+", rf"\g<1>{seed + 1}", text, count=1))

    after = lock_check.stale_in(copy)

    assert f"{stage}: dep {dep} modified" in after
    assert any(line.startswith("demo_data: param data.demo_seed:") and f"now {seed + 1}" in line for line in after), after
    # outputs and the demo export are absent in the copy, as on a fresh clone: never counted
    assert not [line for line in after if "artifacts/" in line or "data/demo" in line or "deleted" in line]


def test_lock_check_is_clean_once_dvc_rewrote_the_lock(copy):
    """No false alarms: after `dvc commit` (outputs stood in by placeholder files) the check finds
    nothing, so each md5, params value and command it reports is one DVC itself would rewrite."""
    for stage in yaml.safe_load((copy / "dvc.yaml").read_text())["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                target = copy / (next(iter(entry)) if isinstance(entry, dict) else entry)
                if target.suffix:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text("placeholder")
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    (target / "placeholder").write_text("placeholder")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet"], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    assert lock_check.stale_in(copy) == []


def test_python_caches_do_not_change_a_dep_folder(copy):
    """.dvcignore keeps __pycache__ out of a folder dep's md5 (features/ would differ per machine)."""
    before = lock_check.stale_in(copy)
    (copy / "features" / "__pycache__").mkdir()
    (copy / "features" / "__pycache__" / "build.cpython-311.pyc").write_bytes(b"\0bytecode")
    assert lock_check.stale_in(copy) == before


def test_generated_folders_are_ignored_by_git():
    for path in ("dvc_plots/index.html", "runs/20250101T000000Z-export/model/model.txt"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, f"{path} not ignored"


def _write_plots(repo: Path) -> None:
    """Small plot files for every plot dvc.yaml declares (CSV with its x/y columns, a 1x1 PNG)."""
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("plots") or []:
            (path, props), = (entry.items() if isinstance(entry, dict) else [(entry, {})])
            target = repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.endswith(".csv"):
                x, y = (props or {}).get("x", "x"), (props or {}).get("y", "y")
                target.write_text(f"{x},{y}\n0,0.1\n1,0.5\n2,0.9\n")
            else:
                target.write_bytes(png)


def test_dvc_plots_show_renders_offline(copy):
    """The page `dvc plots show` writes loads no script from the internet: Vega is inlined by the
    template .dvc/config names, and every declared plot is on it."""
    config = (ROOT / ".dvc" / "config").read_text()
    template = re.search(r"html_template\s*=\s*(\S+)", config)
    assert template, ".dvc/config sets no plots.html_template"
    (copy / ".dvc" / "config").write_text(f"{lock_check.COPY_CONFIG}[plots]\n    html_template = {template.group(1)}\n")
    assert (copy / ".dvc" / template.group(1)).is_file()
    _write_plots(copy)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "-o", "dvc_plots"], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = (copy / "dvc_plots" / "index.html").read_text()

    remote = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^\"'>\s]+", page, flags=re.I)
    assert not remote, remote
    assert "vegaEmbed" in page and "vegaLite" in page
    declared = [next(iter(e)) if isinstance(e, dict) else e
                for s in yaml.safe_load((copy / "dvc.yaml").read_text())["stages"].values() for e in s.get("plots") or []]
    csvs = [p for p in declared if p.endswith(".csv")]
    assert page.count("vegaEmbed('#") + page.count('vegaEmbed("#') >= len(csvs)
    for png in (p for p in declared if p.endswith(".png")):
        assert Path(png).name in page or "data:image/png;base64" in page, png
