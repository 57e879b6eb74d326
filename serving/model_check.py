"""Check a model in a child process before the worker loads it: a bad model costs the child, not the worker.

The registry holds whatever someone registered, and its checksum proves only that the bytes are the
registered ones. LightGBM's loader aborts the whole process on a tree block it cannot parse, and it
loads a tree whose child pointer leads back up without complaint — then every prediction walks that
loop forever (and ``dump_model``, which the TreeSHAP explainer reads, recurses until the stack
overflows). So before a worker touches a model, ``check_model`` runs

    python -m leadscore.serving.model_check <model folder>

with a timeout. The child first reads the LightGBM text itself (``check_structure``: every tree
block where ``tree_sizes`` says, arrays of the lengths ``num_leaves`` implies, child indices in range
and every node reached exactly once from the root — no cycles, no shared nodes —, split features
within ``max_feature_idx``, categorical splits within their bitsets, finite leaf values), and only
then lets LightGBM parse it and predict the canary rows recorded at save (``LeadModel.canary``)
through the booster and through TreeSHAP, comparing both with the recorded margins and
probabilities. Models saved before canaries existed are checked for structure and for answering
at all; the verdict says so. A crash, a hang (the timeout) or a wrong answer is a refusal with the
reason; the worker then serves the rules (``model_invalid``).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# How long the child may take (start-up, parse, predict): ~2.5 s on an idle core, including the
# imports. A model that is not done by then is treated as one that hangs. (No settings field yet:
# this is the default a `LEADSCORE_MODEL_CHECK_TIMEOUT_S` setting would carry.)
MODEL_CHECK_TIMEOUT_S = 60.0
# Bounds that keep the pure-Python read of a hostile file small in memory and time.
MAX_MODEL_BYTES = 512 * 1024 * 1024
MAX_LEAVES = 1 << 17
# |found − recorded| allowed on a canary's margin and probability (the text format round-trips doubles
# exactly; TreeSHAP's sums agree with LightGBM within ~1e-12).
CANARY_TOLERANCE = 1e-7
MODEL_FILE = "model.lgb"  # models.lgbm.MODEL_FILE, restated so that the parent never imports LightGBM

_SPLIT_ARRAYS = ("split_feature", "threshold", "decision_type", "left_child", "right_child")


class ModelStructureError(ValueError):
    """The LightGBM text is not a well-formed model; the message says which tree and what."""


@dataclass(frozen=True)
class Verdict:
    """The child's answer: ``ok`` or the reason it is not, whether a canary was compared, how long it took."""

    ok: bool
    reason: str | None = None
    canary: bool = False
    seconds: float = 0.0
    trees: int = 0
    answered: bool = False  # the child finished and said so (False: it crashed or was cut off)

    @property
    def note(self) -> str:
        """One line for the log: what was checked."""
        if not self.ok:
            return f"refused: {self.reason}"
        compared = "canary rows predicted as recorded" if self.canary else \
            "no canary recorded (saved before canaries): structure checked and predictions ran, values not compared"
        return f"{self.trees} trees well-formed; {compared} ({self.seconds:.1f} s)"


# --- the structure, read without LightGBM


def check_structure(text: bytes) -> dict:
    """Read a LightGBM text model and raise ModelStructureError if LightGBM could not read it safely.

    Returns ``{"trees": n, "max_feature_idx": m}``. Stricter than LightGBM where that is cheap: a
    model LightGBM wrote itself always passes."""
    if len(text) > MAX_MODEL_BYTES:
        raise ModelStructureError(f"model text is {len(text)} bytes, more than the {MAX_MODEL_BYTES} allowed")
    if not text.startswith(b"tree\n"):
        raise ModelStructureError(f"expected a LightGBM text model starting with 'tree', found {text[:16]!r}")
    first = text.find(b"\nTree=")
    end = text.find(b"\nend of trees\n")
    if end < 0:
        raise ModelStructureError("no 'end of trees' line: the model text is cut short")
    if first < 0 or first > end:
        first = end  # no trees at all: caught below
    header = _key_values(text[:first].decode("utf-8", "replace").splitlines()[1:], "header")
    max_feature = _int(header, "max_feature_idx", "header")
    if max_feature < 0:
        raise ModelStructureError(f"header: max_feature_idx is {max_feature}, expected 0 or more")
    names = header.get("feature_names", "").split()
    if len(names) != max_feature + 1:
        raise ModelStructureError(f"header: {len(names)} feature_names, expected max_feature_idx + 1 = {max_feature + 1}")
    if _int(header, "num_tree_per_iteration", "header") != 1:
        raise ModelStructureError("header: num_tree_per_iteration is not 1 (serving explains single-output models)")
    body = text[first + 1:end + 1]
    blocks = _blocks(body, header.get("tree_sizes"))
    if not blocks:
        raise ModelStructureError("the model has no trees")
    for i, block in enumerate(blocks):
        _check_tree(i, block, max_feature)
    return {"trees": len(blocks), "max_feature_idx": max_feature}


def _blocks(body: bytes, tree_sizes: str | None) -> list[bytes]:
    """The tree blocks, each from its ``Tree=i`` line to the next; where ``tree_sizes`` is given,
    LightGBM jumps to each block by those byte counts, so they must land on the blocks exactly."""
    starts = [m.start() for m in re.finditer(rb"(?m)^Tree=", body)]
    blocks = [body[a:b] for a, b in zip(starts, starts[1:] + [len(body)])]
    if tree_sizes is not None:
        try:
            sizes = [int(s) for s in tree_sizes.split()]
        except ValueError:
            raise ModelStructureError("header: tree_sizes holds something other than whole numbers") from None
        if len(sizes) != len(blocks):
            raise ModelStructureError(f"header: tree_sizes lists {len(sizes)} trees, the text holds {len(blocks)}")
        for i, (size, block) in enumerate(zip(sizes, blocks)):
            if size != len(block):
                raise ModelStructureError(
                    f"tree {i}: block is {len(block)} bytes, tree_sizes says {size} (LightGBM would read "
                    "the next tree from the wrong place)")
    return blocks


def _check_tree(i: int, block: bytes, max_feature: int) -> None:
    where = f"tree {i}"
    lines = block.decode("utf-8", "replace").split("\n")
    if lines[0] != f"Tree={i}":
        raise ModelStructureError(f"{where}: block starts with {lines[0][:40]!r}, expected 'Tree={i}'")
    kv = _key_values([ln for ln in lines[1:] if ln], where)
    leaves = _int(kv, "num_leaves", where)
    if not 1 <= leaves <= MAX_LEAVES:
        raise ModelStructureError(f"{where}: num_leaves is {leaves}, expected 1 to {MAX_LEAVES}")
    if kv.get("is_linear", "0") != "0":
        raise ModelStructureError(f"{where}: linear leaves (is_linear={kv['is_linear'][:10]}) are not served")
    values = _numbers(kv, "leaf_value", where, leaves, float)
    if not all(math.isfinite(v) for v in values):
        raise ModelStructureError(f"{where}: a leaf_value is not finite")
    if leaves == 1:
        return
    n = leaves - 1
    feature = _numbers(kv, "split_feature", where, n, int)
    threshold = _numbers(kv, "threshold", where, n, float)
    decision = _numbers(kv, "decision_type", where, n, int)
    left = _numbers(kv, "left_child", where, n, int)
    right = _numbers(kv, "right_child", where, n, int)
    num_cat = _int(kv, "num_cat", where) if "num_cat" in kv else 0
    if num_cat < 0 or num_cat > n:
        raise ModelStructureError(f"{where}: num_cat is {num_cat}, expected 0 to {n}")
    if num_cat:
        bounds = _numbers(kv, "cat_boundaries", where, num_cat + 1, int)
        bits = kv.get("cat_threshold", "").split()
        if bounds[0] != 0 or any(b > a for a, b in zip(bounds[1:], bounds)) or bounds[-1] != len(bits):
            raise ModelStructureError(f"{where}: cat_boundaries do not run from 0 up to the {len(bits)} cat_threshold words")
    for node in range(n):
        if not 0 <= feature[node] <= max_feature:
            raise ModelStructureError(
                f"{where}, node {node}: split_feature {feature[node]} is outside 0..max_feature_idx={max_feature}")
        d = decision[node]
        if not 0 <= d <= 15 or (d >> 2) & 3 == 3:
            raise ModelStructureError(f"{where}, node {node}: decision_type {d} is not one LightGBM writes")
        if d & 1:  # categorical: the threshold is the index of the split's bitset
            t = threshold[node]
            if t != int(t) or not 0 <= int(t) < num_cat:
                raise ModelStructureError(
                    f"{where}, node {node}: categorical split refers to bitset {t}, the tree has {num_cat}")
        elif math.isnan(threshold[node]):
            raise ModelStructureError(f"{where}, node {node}: threshold is NaN")
    _check_links(where, left, right, leaves)


def _check_links(where: str, left: list[int], right: list[int], leaves: int) -> None:
    """Walk from the root: every child index in range, every node and leaf reached exactly once.

    A node reached twice is a cycle (a pointer back up) or a shared subtree; either way LightGBM's
    predictor and ``dump_model`` would walk it forever or twice."""
    n = leaves - 1
    seen_node = [False] * n
    seen_leaf = [False] * leaves
    seen_node[0] = True
    todo = [0]
    while todo:
        node = todo.pop()
        for side, child in (("left_child", left[node]), ("right_child", right[node])):
            if child >= 0:
                if child >= n:
                    raise ModelStructureError(f"{where}, node {node}: {side} {child} is past the last node {n - 1}")
                if seen_node[child]:
                    what = "itself" if child == node else f"node {child}, already reached"
                    raise ModelStructureError(f"{where}, node {node}: {side} points back at {what} (a cycle)")
                seen_node[child] = True
                todo.append(child)
            else:
                leaf = ~child
                if leaf >= leaves:
                    raise ModelStructureError(f"{where}, node {node}: {side} {child} names leaf {leaf}, the tree has {leaves}")
                if seen_leaf[leaf]:
                    raise ModelStructureError(f"{where}, node {node}: {side} reaches leaf {leaf} a second time")
                seen_leaf[leaf] = True
    if not all(seen_node) or not all(seen_leaf):
        lost = seen_node.index(False) if not all(seen_node) else None
        raise ModelStructureError(f"{where}: " + (f"node {lost} is not reachable from the root" if lost is not None
                                                  else f"leaf {seen_leaf.index(False)} is not reachable from the root"))


def _key_values(lines: list[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise ModelStructureError(f"{where}: line {line[:40]!r} is not key=value")
        out[key] = value
    return out


def _int(kv: dict[str, str], key: str, where: str) -> int:
    if key not in kv:
        raise ModelStructureError(f"{where}: no {key}")
    try:
        return int(kv[key])
    except ValueError:
        raise ModelStructureError(f"{where}: {key} is {kv[key][:20]!r}, expected a whole number") from None


def _numbers(kv: dict[str, str], key: str, where: str, count: int, kind: type) -> list:
    if key not in kv:
        raise ModelStructureError(f"{where}: no {key}")
    words = kv[key].split()
    if len(words) != count:
        raise ModelStructureError(f"{where}: {key} has {len(words)} values, expected {count}")
    try:
        return [kind(w) for w in words]
    except ValueError:
        raise ModelStructureError(f"{where}: {key} holds something other than {kind.__name__} numbers") from None


# --- the parent: run the child, read its verdict

# Verdicts the child gave, by the folder's SHA-256: the same bytes need no second child in this process
# (a crash or a timeout is not kept: it may be the machine, not the model).
_VERDICTS: dict[str, Verdict] = {}


def check_folder(folder: Path | str, timeout_s: float | None = None) -> Verdict:
    """``check_model``, once per model content and process."""
    from leadscore.models.lgbm import folder_digest

    digest = folder_digest(folder)
    if digest in _VERDICTS:
        return _VERDICTS[digest]
    verdict = check_model(folder, timeout_s)
    if verdict.answered:
        _VERDICTS[digest] = verdict
    return verdict



def refusal(folder: Path | str) -> str | None:
    """The load hook of ``primary_scorer`` / ``load_champion`` (``check=``) for batch commands: why the
    check refuses the model folder, or None when it passed."""
    verdict = check_folder(folder)
    return None if verdict.ok else (verdict.reason or "the check gave no reason")


def check_model(folder: Path | str, timeout_s: float | None = None, *, structure: bool = True) -> Verdict:
    """Check the model folder in a child process within ``timeout_s`` (``MODEL_CHECK_TIMEOUT_S``).

    Never raises for anything the model does: a crash, a hang or a wrong answer is a Verdict with
    the reason. ``structure=False`` skips the structure read (to show what it guards against)."""
    timeout_s = MODEL_CHECK_TIMEOUT_S if timeout_s is None else timeout_s
    cmd = [sys.executable, "-m", "leadscore.serving.model_check", str(folder)]
    if not structure:
        cmd.append("--no-structure")
    # One thread each: the check is small, and the machine's cores belong to the workers.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        return Verdict(False, f"the check did not finish within {timeout_s:g} s (a tree that loops forever "
                              "hangs every prediction)", seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    answer = _last_json(done.stdout)
    if done.returncode != 0 or answer is None:
        return Verdict(False, _crash(done.returncode, done.stderr), seconds=seconds)
    return Verdict(bool(answer.get("ok")), answer.get("reason"), bool(answer.get("canary")), seconds,
                   int(answer.get("trees", 0)), answered=True)


def _last_json(stdout: bytes) -> dict | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _crash(returncode: int, stderr: bytes) -> str:
    """What a child that died says: the signal or exit code, and LightGBM's last fatal message."""
    how = f"exit {returncode}"
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    lines = stderr.decode("utf-8", "replace").splitlines()
    fatal = next((ln.split("[Fatal]", 1)[-1].strip() for ln in reversed(lines) if "[Fatal]" in ln), None)
    last = fatal or next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    return f"reading or predicting with it crashed the check ({how})" + (f": {last[:160]}" if last else "")


# --- the child


def _child(folder: Path, structure: bool) -> dict:
    """Structure, then LightGBM's own load, then the canary rows; the verdict as a dict."""
    trees = 0
    if structure:
        try:
            trees = check_structure((folder / MODEL_FILE).read_bytes())["trees"]
        except OSError as exc:
            return {"ok": False, "reason": f"cannot read {MODEL_FILE}: {exc.strerror}"}
        except ModelStructureError as exc:
            return {"ok": False, "reason": f"malformed trees: {exc}"}
    import numpy as np

    from leadscore.models.lgbm import LeadModel, ModelLoadError

    try:
        model = LeadModel.load(folder)
    except ModelLoadError as exc:
        return {"ok": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 — metadata that does not parse is a model that cannot serve
        return {"ok": False, "reason": f"cannot read the model's metadata: {type(exc).__name__}: {exc}"}
    from leadscore.features.contract import PERSONAL_COLUMNS
    from leadscore.features.personal import kind_by_header

    # A spec trained before personal data was recognised by header may read such a column: refused
    # (the live path would copy the CRM's value into the lead's profile). Names only, never values.
    personal = sorted(c for c in model.spec.profile_columns if c in PERSONAL_COLUMNS or kind_by_header(c))
    if personal:
        return {"ok": False, "reason": f"the feature spec reads personal data ({', '.join(personal)}); retrain, "
                                       "such columns are left out now"}
    trees = trees or model.booster.num_trees()
    canary = model.canary
    if canary:
        rows = np.array([[np.nan if v is None else v for v in row] for row in canary["rows"]], dtype=np.float64)
    else:
        rows = np.full((1, model.booster.num_feature()), np.nan)
    try:
        margin = model.margin(rows)
        shap_margin = model.contributions(rows).sum(axis=1)
        probability = model.probability(margin)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "reason": f"predicting the canary rows raised {type(exc).__name__}: {exc}"}
    if not canary:
        if not np.all(np.isfinite(margin)):
            return {"ok": False, "reason": "the booster gives a non-finite margin for a row of missing values"}
        return {"ok": True, "canary": False, "trees": trees}
    for what, found, recorded in (("margin", margin, canary["margin"]), ("TreeSHAP margin", shap_margin, canary["margin"]),
                                  ("probability", probability, canary["probability"])):
        gap = np.abs(np.asarray(found, dtype=np.float64) - np.asarray(recorded, dtype=np.float64))
        if not np.all(gap <= CANARY_TOLERANCE):  # also catches NaN
            row = int(np.argmax(np.where(np.isnan(gap), np.inf, gap)))
            return {"ok": False, "reason": f"canary row {row}: {what} {float(np.asarray(found)[row]):.9g}, "
                                           f"recorded at save {float(recorded[row]):.9g}"}
    return {"ok": True, "canary": True, "trees": trees}


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        print("usage: python -m leadscore.serving.model_check <model folder> [--no-structure]", file=sys.stderr)
        return 2
    print(json.dumps(_child(Path(args[0]), "--no-structure" not in argv)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
