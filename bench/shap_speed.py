"""TreeSHAP speed: FastTreeShap beside shap.TreeExplainer and LightGBM's pred_contrib, in one run.

    .venv/bin/python bench/shap_speed.py [--rows 5000] [--train-rows 50000] [--repeat 5] [--single 1000]

Model: LightGBM binary, 300 trees × 31 leaves (num_leaves=31, min_data_in_leaf=5,
min_sum_hessian_in_leaf=1e-3, min_gain_to_split=0, learning_rate=0.05, max_cat_to_onehot=4,
min_data_per_group=20, seed 0; the run checks that every tree has 31 leaves), trained on a
synthetic, seeded table of 50,000 rows × 60 features: 56 numeric (six with ~8% NaN, two of them
also with zeros) and 4 pandas categoricals (5, 12, 30 and 60 levels, ~3% NaN). The explained rows
are fresh draws from the same generator, with categorical indices given as floats (NaN for
missing, a few indices never seen in training), as in production.

Peers, all exact path-dependent TreeSHAP on the same booster and rows:
1. ``shap.TreeExplainer(booster).shap_values(X)`` (explainer built outside the timing).
2. ``FastTreeShap(booster).contributions(X)`` after one warm-up call (its time is printed).
3. ``booster.predict(X, pred_contrib=True, num_threads=2)``.
Batch figures are medians over ``--repeat`` rounds in which the engines take turns (so a change in
machine load hits all of them); single-thread figures of (2) and (3) are measured the same way.
Single-row figures are 1,000 one-row calls with FastTreeShap and with ``pred_contrib`` at
num_threads=1. ``compile_s`` is numba's compile time with an empty cache, in a fresh process.
Prints a table, writes bench/shap_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_FEATURES = 60
CATEGORICAL_LEVELS = {"industry_code": 5, "region_code": 12, "lead_source_code": 30, "job_family_code": 60}
TREES, LEAVES = 300, 31
TRAIN_PARAMS = {
    "objective": "binary", "num_leaves": LEAVES, "min_data_in_leaf": 5, "min_sum_hessian_in_leaf": 1e-3,
    "min_gain_to_split": 0.0, "learning_rate": 0.05, "max_cat_to_onehot": 4, "min_data_per_group": 20,
    "seed": 0, "deterministic": True, "num_threads": 2, "verbose": -1,
}

# Cold compile: a fresh process with an empty numba cache, timing the first batch and first single-row call.
COLD_COMPILE = """
import sys, time, numpy as np, lightgbm as lgb
sys.path.insert(0, sys.argv[1])
from leadscore.models.treeshap import FastTreeShap
booster = lgb.Booster(model_file=sys.argv[2])
X = np.load(sys.argv[3])
fast = FastTreeShap(booster)
t1 = time.perf_counter()
fast.contributions(X[:256])
fast.contributions(X[:1])
print(time.perf_counter() - t1)
"""


def make_frame(n: int, seed: int):
    """A seeded synthetic lead table with NaNs, zeros and categoricals, and its binary label."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_num = N_FEATURES - len(CATEGORICAL_LEVELS)
    num = rng.normal(size=(n, n_num))
    num[:, 10:20] = rng.gamma(2.0, 2.0, size=(n, 10)).round()  # count-like features
    for j in range(6):
        num[rng.random(n) < 0.08, j] = np.nan
    for j in (4, 5):
        num[rng.random(n) < 0.2, j] = 0.0
    cats = {name: rng.integers(0, levels, n) for name, levels in CATEGORICAL_LEVELS.items()}
    logit = (np.nan_to_num(num[:, 0]) * 0.8 - np.nan_to_num(num[:, 1]) * np.nan_to_num(num[:, 2]) * 0.5
             + np.sin(np.nan_to_num(num[:, 3]) * 2) + 0.15 * num[:, 10] - 0.1 * num[:, 11]
             + 0.3 * num[:, 20:30].sum(axis=1)
             + np.where(np.isnan(num[:, 4]), 0.7, 0.0) + 0.4 * (cats["industry_code"] == 2)
             + 0.05 * (cats["lead_source_code"] % 7) - 0.03 * (cats["job_family_code"] % 11) + rng.normal(size=n) - 1.0)
    y = (logit > 0).astype(int)
    frame = pd.DataFrame(num, columns=[f"signal_{j:02d}" for j in range(n_num)])
    for name, codes in cats.items():
        values = codes.astype(float)
        values[rng.random(n) < 0.03] = np.nan
        frame[name] = pd.Categorical.from_codes(np.nan_to_num(values, nan=-1).astype(int),
                                                categories=[f"c{i}" for i in range(CATEGORICAL_LEVELS[name])])
    return frame, y


def as_matrix(frame) -> np.ndarray:
    """What LightGBM sees for the frame: categorical codes as floats, NaN for missing."""
    cols = []
    for name in frame.columns:
        s = frame[name]
        if hasattr(s, "cat"):
            codes = s.cat.codes.to_numpy().astype(float)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(s.to_numpy(dtype=float))
    return np.column_stack(cols)


def train(frame, y):
    import lightgbm as lgb

    booster = lgb.train(TRAIN_PARAMS, lgb.Dataset(frame, y), num_boost_round=TREES)
    leaves = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]
    assert len(leaves) == TREES, f"expected {TREES} trees, got {len(leaves)}"
    return booster, leaves


def timed(engines: dict, repeat: int) -> dict[str, tuple[float, object]]:
    """Median seconds and last output per engine; the engines take turns, so load changes hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    outs: dict[str, object] = {}
    for _ in range(repeat):
        for name, fn in engines.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), outs[name]) for name in engines}


def with_threads(n: int, fn):
    """``fn`` run with numba's thread count set to ``n`` (restored afterwards)."""
    import numba

    def run():
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            return fn()
        finally:
            numba.set_num_threads(before)
    return run


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]


def single_row_ms(fn, X: np.ndarray, calls: int) -> tuple[float, float]:
    times = []
    for i in range(calls):
        row = X[i % len(X)][None, :]
        t0 = time.perf_counter()
        fn(row)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), p99(times)


def shap_values(explainer, X: np.ndarray) -> np.ndarray:
    """shap 0.51 returns a 2-D array for a LightGBM binary model; older versions a [neg, pos] list."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = explainer.shap_values(X)
    return np.asarray(out[-1] if isinstance(out, list) else out)


def cold_compile_s(booster, X: np.ndarray) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        model, rows = Path(tmp) / "model.txt", Path(tmp) / "rows.npy"
        booster.save_model(str(model))
        np.save(rows, X[:256])
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba"))
        out = subprocess.run([sys.executable, "-c", COLD_COMPILE, str(ROOT), str(model), str(rows)],
                             env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000, help="rows to explain")
    ap.add_argument("--train-rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--single", type=int, default=1000, help="single-row calls per engine")
    args = ap.parse_args()

    import lightgbm as lgb
    import numba
    import shap

    from leadscore.models.treeshap import FastTreeShap

    frame, y = make_frame(args.train_rows, seed=0)
    t0 = time.perf_counter()
    booster, leaves = train(frame, y)
    train_s = time.perf_counter() - t0
    test_frame, _ = make_frame(args.rows, seed=1)
    X = as_matrix(test_frame)
    unseen = np.random.default_rng(2).random(len(X)) < 0.01
    X[unseen, -1] = CATEGORICAL_LEVELS["job_family_code"] + 3  # a job family never seen in training

    t0 = time.perf_counter()
    fast = FastTreeShap(booster)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast.contributions(X[:256])  # warm-up: compiles both kernels, or loads them from numba's cache
    fast.contributions(X[:1])
    warmup_s = time.perf_counter() - t0
    compile_s = cold_compile_s(booster, X)

    # shap delegates LightGBM boosters to pred_contrib; it must accept the categorical model.
    t0 = time.perf_counter()
    explainer = shap.TreeExplainer(booster)
    explainer_s = time.perf_counter() - t0
    note = ("shap.TreeExplainer handled the categorical model: for a LightGBM Booster, shap 0.51 "
            "TreeExplainer.shap_values calls booster.predict(X, pred_contrib=True) with LightGBM's "
            "default thread count, so peers (1) and (3) run the same C++ TreeSHAP.")

    load_before = os.getloadavg()[0]
    threads = numba.get_num_threads()
    runs = timed({
        "shap": lambda: shap_values(explainer, X),
        "fast": lambda: fast.contributions(X),
        "pred_contrib": lambda: booster.predict(X, pred_contrib=True, num_threads=2),
        "fast_1thread": with_threads(1, lambda: fast.contributions(X)),
        "pred_contrib_1thread": lambda: booster.predict(X, pred_contrib=True, num_threads=1),
    }, args.repeat)
    (shap_s, shap_out), (fast_s, fast_out), (pc_s, pc_out) = runs["shap"], runs["fast"], runs["pred_contrib"]
    fast1_s, pc1_s = runs["fast_1thread"][0], runs["pred_contrib_1thread"][0]
    raw = booster.predict(X, raw_score=True)

    fast_med, fast_p99 = single_row_ms(fast.contributions, X, args.single)
    pc_med, pc_p99 = single_row_ms(lambda r: booster.predict(r, pred_contrib=True, num_threads=1), X, args.single)

    n = len(X)
    result = {
        "rows": n, "trees": TREES, "leaves": LEAVES, "features": N_FEATURES,
        "categorical_features": len(CATEGORICAL_LEVELS), "train_rows": args.train_rows,
        "trees_with_31_leaves": int(sum(v == LEAVES for v in leaves)),
        "max_distinct_features_on_a_path": int(fast.max_path_features_),
        "train_params": TRAIN_PARAMS, "repeat": args.repeat,
        "shap_rows_per_s": n / shap_s, "fast_rows_per_s": n / fast_s, "pred_contrib_rows_per_s": n / pc_s,
        "ratio_vs_shap": shap_s / fast_s, "ratio_vs_pred_contrib": pc_s / fast_s,
        "fast_1thread_rows_per_s": n / fast1_s, "pred_contrib_1thread_rows_per_s": n / pc1_s,
        "ratio_1thread_vs_pred_contrib": pc1_s / fast1_s,
        "max_abs_diff_vs_shap": float(np.abs(fast_out[:, :-1] - shap_out).max()),
        "max_abs_diff_vs_pred_contrib": float(np.abs(fast_out - pc_out).max()),
        "max_abs_diff_row_sum_vs_raw_score": float(np.abs(fast_out.sum(axis=1) - raw).max()),
        "single_row_calls": args.single,
        "single_row_fast_median_ms": fast_med, "single_row_fast_p99_ms": fast_p99,
        "single_row_pred_contrib_median_ms": pc_med, "single_row_pred_contrib_p99_ms": pc_p99,
        "compile_s": compile_s, "warmup_s": warmup_s, "build_s": build_s,
        "shap_explainer_build_s": explainer_s, "train_s": train_s,
        "numba_threads": threads, "numba_threading_layer": numba.threading_layer(),
        "versions": {"lightgbm": lgb.__version__, "shap": shap.__version__, "numba": numba.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "cpus": os.cpu_count(), "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "note": note,
    }

    print(f"\nTreeSHAP, {n} rows, {TREES} trees × {LEAVES} leaves ({result['trees_with_31_leaves']} trees with "
          f"{LEAVES} leaves), {N_FEATURES} features ({len(CATEGORICAL_LEVELS)} categorical), "
          f"median of {args.repeat}")
    table = [  # engine, seconds, the FastTreeShap time it is compared with, max |Δ| against FastTreeShap
        ("shap.TreeExplainer", shap_s, fast_s, result["max_abs_diff_vs_shap"]),
        ("pred_contrib (num_threads=2)", pc_s, fast_s, result["max_abs_diff_vs_pred_contrib"]),
        (f"FastTreeShap ({threads} threads)", fast_s, fast_s, None),
        ("pred_contrib (num_threads=1)", pc1_s, fast1_s, None),
        ("FastTreeShap (1 thread)", fast1_s, fast1_s, None),
    ]
    print(f"{'engine':<32}{'rows/s':>10}{'FastTreeShap is ×':>19}{'max |Δ| vs FastTreeShap':>25}")
    for name, seconds, fast_seconds, diff in table:
        shown = "" if diff is None else f"{diff:.2e}"
        print(f"{name:<32}{n / seconds:>10,.0f}{seconds / fast_seconds:>19.2f}{shown:>25}")
    print("(the single-thread rows compare with FastTreeShap on one thread)")
    print(f"\nsingle row, {args.single} calls: FastTreeShap median {fast_med:.3f} ms, p99 {fast_p99:.3f} ms; "
          f"pred_contrib (num_threads=1) median {pc_med:.3f} ms, p99 {pc_p99:.3f} ms")
    print(f"row sums vs raw_score: max |Δ| {result['max_abs_diff_row_sum_vs_raw_score']:.2e}")
    print(f"FastTreeShap: build {build_s:.2f} s, compile {compile_s:.2f} s (fresh process, empty numba cache), "
          f"warm-up {warmup_s:.2f} s in this process; shap explainer build {explainer_s:.2f} s")
    print(f"note: {note}")
    out = ROOT / "bench" / "shap_speed.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
