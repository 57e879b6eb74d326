"""Which entries of dvc.lock are stale: code and data deps tracked in git whose md5 differs from the
tree, params whose value differs from params.yaml, commands that changed in dvc.yaml.

DVC's own `dvc status --json` decides, run in a temporary copy of the repository's git files (tracked,
plus new files not ignored), so outputs and data/demo are absent as on a fresh clone and do not count.

    .venv/bin/python scripts/dvc_lock_check.py        # exit 0: current; exit 1: prints each stale entry

After code or params change, `dvc repro` (or `dvc commit` when the outputs are current) rewrites
dvc.lock; run this again to see it current.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Not a git repository in the copy: DVC must work without one (and never look for updates or phone home).
COPY_CONFIG = "[core]\n    analytics = false\n    no_scm = true\n    check_update = false\n"


def git_files(root: Path) -> list[str]:
    """The repository's files as a fresh clone (after a commit of the current tree) would hold them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode()
    return [f for f in listed.split("\0") if f and os.path.lexists(root / f)]


def prepare_copy(root: Path, dest: Path) -> Path:
    """Copy ``root``'s git files into ``dest`` (symlinks stay links) and make it a DVC repo without git."""
    for rel in git_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target, follow_symlinks=False)
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config").write_text(COPY_CONFIG)
    return dest


def _leaves(tree, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict) and tree:
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def _lookup(tree, dotted: str):
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return "<missing>"
        tree = tree[key]
    return tree


def _param_changes(copy: Path, stage: str, file: str, keys: dict) -> list[str]:
    """Each params leaf of ``stage`` whose lock value differs from ``file`` now: 'key: lock X, now Y'."""
    lock = (yaml.safe_load((copy / "dvc.lock").read_text()) or {}).get("stages", {}).get(stage, {})
    locked = ((lock.get("params") or {}).get(file)) or {}
    current = yaml.safe_load((copy / file).read_text()) or {}
    lines = []
    for key in keys:
        before = _leaves(locked.get(key, "<missing>"), key)
        now = _leaves(_lookup(current, key), key)
        for leaf in sorted(set(before) | set(now)):
            if before.get(leaf, "<missing>") != now.get(leaf, "<missing>"):
                lines.append(f"{leaf}: lock {before.get(leaf, '<missing>')!r}, now {now.get(leaf, '<missing>')!r}")
    return lines or [f"{key}: {status}" for key, status in keys.items()]


def stale_in(copy: Path) -> list[str]:
    """The stale dvc.lock entries of a prepared copy, one readable line each (empty: current)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env.pop("DVC_STAGE", None)
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=copy, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc status failed in {copy} (exit {done.returncode}): {done.stderr.strip()}")
    status = json.loads(done.stdout or "{}")
    stale: list[str] = []
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):  # "changed command", "changed checksum", "always changed"
                stale.append(f"{stage}: {entry}")
                continue
            for path, what in (entry.get("changed deps") or {}).items():
                if isinstance(what, dict):  # a params file: {key: "modified" | "new" | "deleted"}
                    stale += [f"{stage}: param {line}" for line in _param_changes(copy, stage, path, what)]
                elif os.path.lexists(copy / path):  # a git file or folder; outputs and data/demo are absent
                    stale.append(f"{stage}: dep {path} {what}")
    return stale


def stale_entries(root: Path = ROOT) -> list[str]:
    """The stale dvc.lock entries of the repository at ``root``."""
    with tempfile.TemporaryDirectory(prefix="dvc-lock-check-") as tmp:
        return stale_in(prepare_copy(root, Path(tmp)))


def main() -> int:
    stale = stale_entries(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    if not stale:
        print("dvc.lock is current: every git-tracked dep, param and command matches the tree")
        return 0
    print(f"dvc.lock is stale in {len(stale)} entr{'y' if len(stale) == 1 else 'ies'} "
          "(run `dvc repro`, or `dvc commit` when the outputs are current):")
    for line in stale:
        print(f"  {line}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
