"""Lay out the Bento's build context: the installed namespace, as pyproject.toml maps it, minus what
serving never imports (training/, the CLI, the demo generator), plus bentofile.yaml and the pinned
serving requirements it names.

`bentoml build` copies the folders of its build context as they are, so building from the repository
would ship `serving/` instead of `leadscore/serving/`. This script reads the one mapping
(``[tool.setuptools.package-dir]``) and copies the files to where an install puts them:

    python scripts/bento_context.py build/bento && bentoml build build/bento   (what `make bento` runs)
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not imported by the service: the quarterly workflow and the app on top of it.
LEFT_OUT = ("leadscore.training", "leadscore.cli", "leadscore.demo")


def build_context(out: Path, root: Path = ROOT) -> Path:
    """Write the build context to ``out`` (emptied first) and return it."""
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = setup.get("package-data", {})
    if out.exists():
        shutil.rmtree(out)
    for package in setup["packages"]:
        if package.startswith(LEFT_OUT):
            continue
        mapped = max((k for k in setup["package-dir"] if package == k or package.startswith(k + ".")), key=len)
        src = root / setup["package-dir"][mapped] / Path(*package[len(mapped):].strip(".").split(".") if package != mapped else ())
        dst = out / Path(*package.split("."))
        dst.mkdir(parents=True, exist_ok=True)
        patterns = ["*.py", *data.get(package, [])]
        for pattern in patterns:
            for f in sorted(src.glob(pattern)):
                if f.is_file() and ".".join((package, f.stem)) not in LEFT_OUT:
                    shutil.copyfile(f, dst / f.name)  # a link (./params.yaml) becomes its content
    shutil.copyfile(root / "bentofile.yaml", out / "bentofile.yaml")
    # The pinned serving requirements, where bentofile.yaml names them (read at build time, not shipped as code).
    (out / "serving").mkdir()
    shutil.copyfile(root / "serving" / "requirements.txt", out / "serving" / "requirements.txt")
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "bento"
    print(build_context(target.resolve()))
