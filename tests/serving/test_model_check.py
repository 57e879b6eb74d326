"""A malformed model behind a valid checksum must not take the worker down.

Two faults measured on main: a tree block LightGBM cannot parse aborts the process (SIGABRT), and a
tree whose child pointer leads back to its own node loads fine, then hangs every prediction (and
crashes TreeSHAP's ``dump_model``). Both are reproduced here in a child process
(``structure=False``), then refused by ``serving.model_check`` before LightGBM reads them in this
process: this test process is the worker, so if it survives, the worker did. The fallback reasons
come from one vocabulary (``models.policy``) and never show a URL or a path.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from leadscore.models.lgbm import MODEL_FILE, LeadModel, folder_digest
from leadscore.models.policy import FALLBACK_REASONS, fallback, load_failure, reason_code, scrub
from leadscore.models.registry import CHECKSUM_FILE, ModelRefused, use_tracking
from leadscore.serving.model_check import ModelStructureError, check_model, check_structure
from tests.serving.test_faults import _core, _model_folder, _score, _settings, request_body, registry_down  # noqa: F401

# The child needs ~2.5 s to import LightGBM and predict on an idle core; this leaves room for a busy one.
CHECK_TIMEOUT_S = 30.0
# For the model that hangs: the cut-off itself is what is tested.
HANG_TIMEOUT_S = 6.0


# --- editing a model's LightGBM text


def _split(text: bytes) -> tuple[bytes, list[bytes], bytes]:
    start = text.index(b"\nTree=0\n") + 1
    end = text.index(b"end of trees\n")
    return text[:start], [b for b in re.split(rb"(?m)^(?=Tree=)", text[start:end]) if b], text[end:]


def _join(head: bytes, blocks: list[bytes], tail: bytes, fix_sizes: bool) -> bytes:
    if fix_sizes:  # keep LightGBM's jump table right, so that only the edit itself is wrong
        sizes = b"tree_sizes=" + b" ".join(str(len(b)).encode() for b in blocks)
        head = re.sub(rb"(?m)^tree_sizes=.*$", sizes, head)
    return head + b"".join(blocks) + tail


def _lines(block: bytes) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in block.decode().splitlines()[1:] if "=" in ln)


def _with(block: bytes, **values: str) -> bytes:
    out = []
    for ln in block.decode().split("\n"):
        key = ln.split("=", 1)[0]
        out.append(f"{key}={values[key]}" if key in values and "=" in ln else ln)
    return "\n".join(out).encode()


def _big_tree(blocks: list[bytes]) -> int:
    """The first tree with a split below the root (a node 1 whose children we can point elsewhere)."""
    return next(i for i, b in enumerate(blocks) if int(_lines(b)["num_leaves"]) >= 3)


def _edit(text: bytes, fault: str) -> bytes:
    head, blocks, tail = _split(text)
    i = _big_tree(blocks)
    kv = _lines(blocks[i])
    left, right = kv["left_child"].split(), kv["right_child"].split()
    fix = True
    if fault == "unparseable":  # the measured fault: a block cut short in the middle, LightGBM aborts
        blocks[i] = blocks[i].replace(b"\nleaf_value=", b"\nleaf_va\nleaf_value=", 1)
        fix = False
    elif fault == "self_cycle":  # the measured fault: a child pointer back at its own node, LightGBM hangs
        blocks[i] = _with(blocks[i], left_child=" ".join(["0", *left[1:]]))
    elif fault == "cycle_to_root":
        node = next(n for n in (int(left[0]), int(right[0])) if n > 0)
        new = list(left)
        new[node] = "0"
        blocks[i] = _with(blocks[i], left_child=" ".join(new))
    elif fault == "child_past_end":
        blocks[i] = _with(blocks[i], right_child=" ".join([str(len(right) + 5), *right[1:]]))
    elif fault == "leaf_past_end":
        new = list(left)
        j = next(k for k, c in enumerate(new) if int(c) < 0)
        new[j] = str(-int(kv["num_leaves"]) - 3)
        blocks[i] = _with(blocks[i], left_child=" ".join(new))
    elif fault == "feature_past_max":
        feature = kv["split_feature"].split()
        blocks[i] = _with(blocks[i], split_feature=" ".join(["999", *feature[1:]]))
    elif fault == "short_array":  # LightGBM loads this one silently and reads past the array
        blocks[i] = _with(blocks[i], left_child=" ".join(left[:-1]))
    elif fault == "not_a_number":
        blocks[i] = _with(blocks[i], threshold="1.5 x " + " ".join(kv["threshold"].split()[2:]))
    elif fault == "sizes_off":
        head = re.sub(rb"(?m)^tree_sizes=(\d+)", lambda m: b"tree_sizes=" + str(int(m.group(1)) + 1).encode(), head)
        fix = False
    elif fault == "no_end":
        return _join(head, blocks, b"", fix_sizes=False)
    elif fault.startswith("leaf_value="):  # well-formed, other than registered: only the canary sees it
        values = kv["leaf_value"].split()
        leaf = int(fault.split("=")[1])
        values[leaf] = repr(float(values[leaf]) + 0.5)
        blocks[i] = _with(blocks[i], leaf_value=" ".join(values))
    else:
        raise AssertionError(fault)
    return _join(head, blocks, tail, fix)


def _broken_copy(source: Path, folder: Path, fault: str) -> Path:
    shutil.copytree(source, folder)
    booster = folder / MODEL_FILE
    booster.write_bytes(_edit(booster.read_bytes(), fault))
    return folder


# --- the structure, read without LightGBM


def test_a_model_lightgbm_wrote_passes_the_structure_check(trained):
    text = (trained["model_dir"] / MODEL_FILE).read_bytes()
    found = check_structure(text)
    assert found["trees"] == text.count(b"\nTree=") and found["trees"] > 0
    assert found["max_feature_idx"] + 1 == len(trained["model"].spec.features)


@pytest.mark.parametrize(("fault", "message"), [
    ("unparseable", "tree_sizes says"),
    ("self_cycle", "left_child points back at itself (a cycle)"),
    ("cycle_to_root", "points back at node 0, already reached (a cycle)"),
    ("child_past_end", "is past the last node"),
    ("leaf_past_end", "names leaf"),
    ("feature_past_max", "split_feature 999 is outside 0..max_feature_idx"),
    ("short_array", "left_child has"),
    ("not_a_number", "threshold holds something other than float numbers"),
    ("sizes_off", "tree_sizes says"),
    ("no_end", "no 'end of trees' line"),
])
def test_malformed_trees_are_named_with_tree_and_node(trained, fault, message):
    text = _edit((trained["model_dir"] / MODEL_FILE).read_bytes(), fault)
    with pytest.raises(ModelStructureError, match=re.escape(message)) as caught:
        check_structure(text)
    assert re.search(r"\btree \d+\b", str(caught.value)) or fault == "no_end"


def test_a_pickle_or_an_empty_file_is_not_a_model():
    with pytest.raises(ModelStructureError, match="expected a LightGBM text model"):
        check_structure(b"\x80\x04\x95 a pickle")
    with pytest.raises(ModelStructureError, match="expected a LightGBM text model"):
        check_structure(b"")


# --- the canary recorded at save


def test_save_records_a_canary_that_the_loaded_model_reproduces(trained):
    model = LeadModel.load(trained["model_dir"])
    canary = model.canary
    assert canary is not None and len(canary["rows"]) == len(canary["margin"]) == len(canary["probability"]) == 16
    assert all(v is None for v in canary["rows"][0])  # the row of missing values
    assert len({round(m, 9) for m in canary["margin"]}) > 4, "the canary rows should reach different leaves"
    import numpy as np

    rows = np.array([[np.nan if v is None else v for v in row] for row in canary["rows"]])
    assert np.allclose(model.margin(rows), canary["margin"], rtol=0, atol=1e-12)
    assert np.allclose(model.contributions(rows).sum(axis=1), canary["margin"], rtol=0, atol=1e-9)


# --- the child process: what LightGBM does with the faults, and what the check does instead


def test_without_the_structure_check_lightgbm_aborts_on_an_unparseable_block(trained, tmp_path):
    folder = _broken_copy(trained["model_dir"], tmp_path / "m", "unparseable")
    verdict = check_model(folder, CHECK_TIMEOUT_S, structure=False)
    assert not verdict.ok and not verdict.answered
    assert "crashed the check (killed by SIGABRT)" in verdict.reason and "Model format error" in verdict.reason


def test_without_the_structure_check_a_self_cycle_hangs_until_the_timeout_cuts_it_off(trained, tmp_path):
    folder = _broken_copy(trained["model_dir"], tmp_path / "m", "self_cycle")
    started = time.monotonic()
    verdict = check_model(folder, HANG_TIMEOUT_S, structure=False)
    took = time.monotonic() - started
    assert not verdict.ok and f"did not finish within {HANG_TIMEOUT_S:g} s" in verdict.reason
    assert HANG_TIMEOUT_S <= took < HANG_TIMEOUT_S + 5


@pytest.mark.parametrize("fault", ["unparseable", "self_cycle"])
def test_the_check_refuses_both_faults_before_lightgbm_reads_them(trained, tmp_path, fault):
    folder = _broken_copy(trained["model_dir"], tmp_path / "m", fault)
    verdict = check_model(folder, CHECK_TIMEOUT_S)
    assert not verdict.ok and verdict.answered and verdict.reason.startswith("malformed trees: tree ")
    assert verdict.seconds < 10  # the child stops before it imports LightGBM


def test_the_check_passes_the_trained_model_and_compares_its_canary(trained):
    verdict = check_model(trained["model_dir"], CHECK_TIMEOUT_S)
    assert verdict.ok and verdict.canary, verdict.reason
    assert "canary rows predicted as recorded" in verdict.note


def test_a_changed_leaf_value_on_a_canary_path_is_caught(trained, tmp_path):
    import numpy as np

    model = LeadModel.load(trained["model_dir"])
    _, blocks, _ = _split((trained["model_dir"] / MODEL_FILE).read_bytes())
    missing = np.full((1, len(model.spec.features)), np.nan)  # canary row 0
    leaf = int(model.booster.predict(missing, pred_leaf=True)[0, _big_tree(blocks)])
    folder = _broken_copy(trained["model_dir"], tmp_path / "m", f"leaf_value={leaf}")
    check_structure((folder / MODEL_FILE).read_bytes())  # well-formed: the structure cannot see it
    verdict = check_model(folder, CHECK_TIMEOUT_S)
    assert not verdict.ok and verdict.reason.startswith("canary row "), verdict.reason
    assert "recorded at save" in verdict.reason


def test_a_model_saved_before_canaries_is_checked_for_structure_and_says_so(trained, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(trained["model_dir"], folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    del mlmodel["metadata"]["leadscore"]["canary"]
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    verdict = check_model(folder, CHECK_TIMEOUT_S)
    assert verdict.ok and not verdict.canary
    assert "no canary recorded" in verdict.note and "values not compared" in verdict.note


# --- the worker: the rules answer, saying why; nothing crashes, nothing hangs


@contextmanager
def _registry_gone(monkeypatch):
    """From here on the tracking server is unreachable; MLflow's global URI is restored afterwards."""
    from leadscore.serving.core import mlflow_fails_fast

    mlflow_fails_fast()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    try:
        yield
    finally:
        monkeypatch.undo()
        use_tracking()


def _break_the_cache(cache: Path, fault: str) -> Path:
    """Damage the verified cached copy and re-record its checksum: the bytes are 'the registered ones'."""
    folder = _model_folder(cache)
    booster = folder / MODEL_FILE
    booster.write_bytes(_edit(booster.read_bytes(), fault))
    (folder.parent.parent / CHECKSUM_FILE).write_text(json.dumps({"sha256": folder_digest(folder)}))
    return folder


@pytest.mark.parametrize("fault", ["unparseable", "self_cycle"])
def test_a_malformed_model_behind_a_valid_checksum_means_rules_saying_model_invalid(
        trained, tmp_path, request_body, monkeypatch, fault):
    settings = _settings(tmp_path)
    assert _core(settings).model is not None  # registry up: fills and verifies the cache
    _break_the_cache(tmp_path / "cache", fault)
    with _registry_gone(monkeypatch):  # only the (re-checksummed) cache is left
        started = time.monotonic()
        core = _core(settings)  # LightGBM in this process would abort or hang here
        took = time.monotonic() - started
    assert took < CHECK_TIMEOUT_S
    assert core.model is None and core.ready  # /readyz: ready; /metadata: scorer rules, fallback_reason why
    reason = core.fallback_reason
    assert reason_code(reason) == "model_invalid" and "malformed trees: tree " in reason, reason
    assert str(tmp_path) not in reason and "127.0.0.1" not in reason
    results = _score(core, request_body)
    assert results and all(s.out.scorer == "rules" and s.out.fallback_reason == reason for s in results)


def test_reload_refuses_a_malformed_model_and_keeps_serving_the_current_one(trained, tmp_path, monkeypatch):
    settings = _settings(tmp_path)
    core = _core(settings)
    assert core.model is not None
    serving = core.model.version
    _break_the_cache(tmp_path / "cache", "self_cycle")
    with _registry_gone(monkeypatch):
        answer = core.reload()
    assert not answer["changed"] and answer["model_version"] == serving
    assert reason_code(answer["reason"]) == "model_invalid" and "a cycle" in answer["reason"]
    assert core.model is not None and core.fallback_reason is None


# --- the vocabulary


def test_reasons_without_a_model_use_the_vocabulary(trained, tmp_path, registry_down):  # noqa: F811
    core = _core(_settings(tmp_path))
    assert reason_code(core.fallback_reason) == "registry_unavailable"
    assert "no cached 'lead-scoring@champion'" in core.fallback_reason
    for leak in ("127.0.0.1", "http://", "/api/", str(tmp_path)):
        assert leak not in core.fallback_reason, core.fallback_reason


def test_load_failures_map_to_codes_and_lose_their_paths():
    cases = {
        "no model 'lead-scoring@champion' in the registry at sqlite:////srv/mlflow.db: not found": "no_champion",
        "registry unreachable (ConnectionError: x), and no cached 'lead-scoring@champion' in /srv/cache": "registry_unavailable",
        "could not download model version 3: s3://bucket/models/3 denied": "registry_unavailable",
        "cached model version 3 fails its checksum (expected …): the files in /srv/cache/3 changed": "model_checksum",
        "/srv/cache/3/artifacts/model/model.lgb: expected a LightGBM text model, found b'x'": "model_invalid",
    }
    from leadscore.models.lgbm import ModelLoadError

    for message, code in cases.items():
        reason = load_failure(ModelLoadError(message))
        assert reason_code(reason) == code, (message, reason)
        assert "/srv" not in reason and "://" not in reason, reason
    assert reason_code(load_failure(ModelRefused("malformed trees: tree 0"))) == "model_invalid"
    assert reason_code(load_failure(KeyError("spec"))) == "model_unavailable"


@pytest.mark.parametrize(("cause", "leak"), [
    ("API request to http://10.0.3.7:5000/api/2.0/mlflow/x failed", "10.0.3.7"),
    ("HTTPConnectionPool(host='mlflow.internal', port=5000): Max retries", "mlflow.internal"),
    ("connect to db.internal.corp:5432 refused", "db.internal.corp"),
    ("/home/ci/.leadscore-cache/lead-scoring/3/model.lgb: bad", "/home/ci"),
    ("relative .leadscore-cache/lead-scoring/3 has no readable checksum", ".leadscore-cache/"),
    (r"C:\models\3\model.lgb: bad", "C:\\models"),
    ("models:/lead-scoring/3 is gone", "models:/"),
])
def test_scrub_removes_urls_hosts_and_paths(cause, leak):
    cleaned = scrub(cause)
    assert leak not in cleaned and ("<url>" in cleaned or "<host>" in cleaned or "<path>" in cleaned), cleaned


def test_scrub_keeps_the_sense_and_the_end_of_a_long_cause():
    assert scrub("model version 2: 3/4 rows, tree 5, node 1") == "model version 2: 3/4 rows, tree 5, node 1"
    long = "registry unreachable (" + "x" * 500 + "), and no cached 'lead-scoring@champion'"
    assert len(scrub(long)) <= 240 and scrub(long).endswith("no cached 'lead-scoring@champion'")


def test_the_vocabulary_is_closed():
    assert {"no_champion", "registry_unavailable", "model_invalid", "model_failed_check", "deadline",
            "model_error"} <= set(FALLBACK_REASONS)
    assert fallback("deadline", "model version 3 did not answer within the 100 ms deadline").startswith("deadline: ")
    with pytest.raises(ValueError, match="not one of"):
        fallback("something_else", "x")
    assert reason_code("model unavailable: the old free text") is None


def test_deadline_and_request_errors_are_reasons_of_the_vocabulary(trained, tmp_path, request_body, monkeypatch):
    from leadscore.serving import live

    core = _core(_settings(tmp_path))
    assert core.model is not None

    def broken(*args, **kwargs):
        raise OSError("[Errno 2] No such file: '/srv/secret/path'")

    monkeypatch.setattr(live, "score_model", broken)
    results = _score(core, request_body)
    assert all(reason_code(s.out.fallback_reason) == "model_error" and "/srv" not in s.out.fallback_reason
               for s in results)


# --- batch commands: a malformed model file is refused there too, never a crash or a hang


def _cli(*args: str, timeout: float) -> "subprocess.CompletedProcess":
    import subprocess
    import sys

    code = "import sys; from leadscore.cli import app; sys.argv = ['leadscore', *sys.argv[1:]]; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("fault", ["unparseable", "self_cycle"])
@pytest.mark.parametrize("command", ["score", "thresholds", "drift"])
def test_batch_commands_refuse_a_malformed_model_instead_of_crashing_or_hanging(trained, demo_dir, tmp_path, fault,
                                                                              command):
    """On main `score`, `thresholds` and `drift --model-dir` loaded the file straight into LightGBM:
    the unparseable block aborted the process (SIGABRT), the self-cycle hung it. `score` answers with
    the rules and says why; the others, which need the model itself, exit 1 naming the fault."""
    folder = _broken_copy(trained["model_dir"], tmp_path / "m", fault)
    args = {"score": ["--as-of", "2026-06-01", "--out", str(tmp_path / "scores.csv")],
            "thresholds": ["--weeks", "2"],
            "drift": ["--dataset", str(trained["dataset"]), "--out", str(tmp_path / "drift")]}[command]
    done = _cli(command, "--data", str(demo_dir), "--model-dir", str(folder), *args, timeout=120)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode >= 0 and "Traceback" not in said, said[-600:]  # no signal, no traceback
    assert "malformed trees: tree " in said, said[-600:]
    if command == "score":
        import pandas as pd

        assert done.returncode == 0, said[-600:]
        scores = pd.read_csv(tmp_path / "scores.csv")
        assert (scores["scorer"] == "rules").all() and scores["fallback_reason"].str.startswith("model_invalid: ").all()
    else:
        assert done.returncode == 1, said[-600:]


def test_a_spec_that_reads_a_personal_column_is_refused(trained, tmp_path):
    """A model trained before a column was recognised as personal ("telefon") is not served."""
    folder = tmp_path / "m"
    shutil.copytree(trained["model_dir"], folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["metadata"]["leadscore"]["spec"]["profile_columns"]["telefon"] = "category"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    verdict = check_model(folder, CHECK_TIMEOUT_S)
    assert not verdict.ok and "personal data (telefon)" in verdict.reason, verdict.reason
