"""Training speed at scale: LightGBM beside scikit-learn's HistGradientBoostingClassifier, in one run.

    .venv/bin/python bench/train_speed.py [--rows 1000000] [--rounds 300] [--variants] [--params params.yaml]

Data: a seeded synthetic snapshot table generated in process, 1,000,000 rows × 80 features shaped
like our training sets: 60 numeric (36 activity counts over 7/30/90-day windows, nested and
zero-inflated; 8 days-since values with the sentinel 3650 for "never"; 16 continuous) and 20 pandas
categoricals (3–50 levels, 0–20 % missing). The label (~3 % positive) is a logistic function of a
handful of features, two interactions and hidden noise, with a slow drift over time. Row order is
time: the first 85 % train, the last 15 % are the test set.

LightGBM: ``train.lgbm`` from params.yaml (plus ``seed`` and ``deterministic`` as training/train.py
adds them; no monotone constraints, max_bin 255, the default), a fixed number of rounds (300:
the upper end of where the demo's early stopping lands), no early stopping. Dataset construction
(binning, from the pandas frame) and training are timed apart.

Peer: ``HistGradientBoostingClassifier`` on the same rows with the same rounds, learning rate,
leaves (max_leaf_nodes), min_samples_leaf, l2_regularization, max_bins 255,
categorical_features="from_dtype", early_stopping=False, 2 OpenMP threads. It has no per-tree
feature or row subsampling (max_features is per split and stays 1.0), so it looks at every row
and feature in each tree, where LightGBM's feature_fraction and bagging (0.7 and 0.8 in
params.yaml) skip some. Its fit includes its binning.

Peak memory: the high-water mark of resident memory (VmHWM, reset through /proc/self/clear_refs
before each model; the data frame is included) and the process's max RSS from getrusage.
CPU seconds of this process and of all others are recorded for each phase; a phase during which
other processes used more than 0.2 cores is flagged. OpenMP waits passively (OMP_WAIT_POLICY,
as leadscore/cli.py sets it) unless the environment says otherwise.
``--variants`` (automatic when LightGBM misses the 90 s target) also times max_bin 63 and
force_col_wise / force_row_wise. Prints a table, writes bench/train_speed.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before numpy, LightGBM and scikit-learn load OpenMP
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as leadscore/cli.py trains: no spinning threads

import argparse
import gc
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 90.0
BUSY_CORES = 0.2  # other processes using more than this many cores on average: the phase is flagged
TEST_SHARE = 0.15
SEED = 2024
ACTIVITY_TYPES = ["page_view", "email_open", "email_click", "pricing_page_view", "webinar_attendance",
                  "whitepaper_download", "demo_request", "contact_form", "trial_signup", "form_fill",
                  "social_click", "event_visit"]
# Mean events per 90 days of an active lead, and the share of leads that never do it.
ACTIVITY_RATE = [12.0, 8.0, 2.0, 1.0, 0.4, 0.5, 0.3, 0.4, 0.2, 0.3, 0.6, 0.1]
ACTIVITY_NEVER = [0.3, 0.2, 0.5, 0.7, 0.8, 0.75, 0.85, 0.8, 0.9, 0.8, 0.7, 0.9]
DAYS_SINCE = ["days_since_last_activity", "days_since_first_activity", "days_since_last_hand_raiser",
              "days_since_last_email_open", "days_since_last_email_click", "days_since_last_pricing_view",
              "days_since_last_webinar", "days_since_last_form_fill"]
CONTINUOUS = ["engagement", "activity_trend", "lead_age_days", "log_company_size", "log_revenue",
              "email_open_rate", "email_click_rate", "pages_per_visit", "avg_session_minutes",
              "channels_90d_share", "fit_score_external", "distance_to_office_km", "web_sessions_ratio",
              "content_depth", "recency_weighted_visits", "bounce_rate"]
CATEGORY_LEVELS = {"industry": 24, "country": 40, "region": 8, "lead_source": 15, "seniority": 7,
                   "job_function": 18, "company_size_band": 6, "employee_band": 9, "crm_owner_team": 5,
                   "campaign": 50, "utm_medium": 10, "utm_source": 30, "device": 3, "browser": 8,
                   "email_domain_type": 3, "language": 12, "product_interest": 11, "tech_stack": 35,
                   "funding_stage": 7, "persona": 13}
NEVER = 3650.0


def make_table(n: int, seed: int = SEED):
    """The synthetic snapshot table (row order = time) and its label."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)  # time, 0 → 1 across the rows
    cols: dict[str, np.ndarray] = {}
    activity = rng.gamma(1.5, 1 / 1.5, n) * (0.9 + 0.2 * t)  # how active a lead is, rising slowly over time

    for name, rate, never in zip(ACTIVITY_TYPES, ACTIVITY_RATE, ACTIVITY_NEVER):
        lam = rate * activity * (rng.random(n) >= never)  # zero-inflated: some leads never do it
        c7 = rng.poisson(lam * 7 / 90)
        c30 = c7 + rng.poisson(lam * 23 / 90)
        c90 = c30 + rng.poisson(lam * 60 / 90)
        cols.update({f"{name}_7d": c7, f"{name}_30d": c30, f"{name}_90d": c90})

    any90 = sum(cols[f"{a}_90d"] for a in ACTIVITY_TYPES)
    hand90 = cols["demo_request_90d"] + cols["contact_form_90d"] + cols["trial_signup_90d"]
    lead_age = rng.integers(1, 181, n).astype(float)
    last = np.minimum(rng.exponential(25 / np.maximum(activity, 0.05)), lead_age).round()
    cols["days_since_last_activity"] = np.where(any90 > 0, last, NEVER)
    cols["days_since_first_activity"] = np.where(any90 > 0, np.maximum(lead_age, last), NEVER)
    cols["days_since_last_hand_raiser"] = np.where(hand90 > 0, rng.integers(0, 90, n), NEVER)
    for name, source in [("days_since_last_email_open", "email_open"), ("days_since_last_email_click", "email_click"),
                         ("days_since_last_pricing_view", "pricing_page_view"),
                         ("days_since_last_webinar", "webinar_attendance"), ("days_since_last_form_fill", "form_fill")]:
        cols[name] = np.where(cols[f"{source}_90d"] > 0, (rng.random(n) * 90).round(), NEVER)

    recent = sum(cols[f"{a}_7d"] for a in ACTIVITY_TYPES)
    cols["engagement"] = np.log1p(recent * 2 + hand90 * 5 + rng.gamma(1.0, 1.0, n))
    cols["activity_trend"] = (recent * 90 / 7 - any90) / (any90 + 1) + rng.normal(0, 0.2, n)
    cols["lead_age_days"] = lead_age
    cols["log_company_size"] = rng.normal(4.0, 1.5, n)
    cols["log_revenue"] = cols["log_company_size"] * 0.8 + rng.normal(12.0, 1.0, n)
    cols["email_open_rate"] = rng.beta(2, 5, n)
    cols["email_click_rate"] = cols["email_open_rate"] * rng.beta(1, 6, n)
    for name in CONTINUOUS[7:]:
        cols[name] = rng.lognormal(0.0, 1.0, n)
    for name in ("log_revenue", "fit_score_external", "distance_to_office_km"):
        cols[name][rng.random(n) < 0.1] = np.nan  # profile fields that are often empty

    frame = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in cols.items()})
    for i, (name, levels) in enumerate(CATEGORY_LEVELS.items()):
        p = 1.0 / np.arange(1, levels + 1) ** 1.1  # Zipf-like: a few big levels, a long tail
        codes = rng.choice(levels, size=n, p=p / p.sum())
        codes[rng.random(n) < (i % 5) * 0.05] = -1  # 0, 5, 10, 15 or 20 % missing
        frame[name] = pd.Categorical.from_codes(codes, categories=[f"{name}_{j}" for j in range(levels)])

    # The label: a few features, two interactions, category effects, hidden noise, drift.
    industry = np.random.default_rng(seed + 1).normal(0, 0.5, CATEGORY_LEVELS["industry"])
    seniority = np.array([-0.8, -0.4, 0.0, 0.3, 0.6, 0.8, 1.0])
    ind = frame["industry"].cat.codes.to_numpy()
    sen = frame["seniority"].cat.codes.to_numpy()
    logit = (1.2 * np.log1p(hand90)
             + 0.6 * np.log1p(cols["pricing_page_view_30d"])
             + 0.3 * np.log1p(cols["webinar_attendance_90d"])
             - 0.45 * np.log1p(np.minimum(cols["days_since_last_activity"], 365) / 7)
             + 0.25 * cols["log_company_size"]
             + np.where(ind >= 0, industry[ind], 0.0)
             + np.where(sen >= 0, seniority[sen], 0.0)
             + 0.5 * (hand90 > 0) * (sen >= 4)  # a senior hand-raiser
             + 0.4 * (cols["email_click_rate"] > 0.1) * (cols["log_company_size"] > 5)
             - 0.3 * t  # conversion drifts down slowly
             + rng.normal(0, 0.8, n))  # what the features do not see
    offset = _intercept(logit, 0.03)
    label = (rng.random(n) < 1 / (1 + np.exp(-(logit + offset)))).astype(np.int8)
    return frame, label


def _intercept(logit: np.ndarray, rate: float) -> float:
    """The offset that makes the mean probability `rate` (bisection)."""
    lo, hi = -20.0, 5.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate else (lo, mid)
    return (lo + hi) / 2


def _status_mb(key: str) -> float | None:
    """VmRSS / VmHWM of this process in MiB (None where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the resident-memory high-water mark to the current RSS (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _memory(before: float | None, reset: bool) -> dict:
    peak = _status_mb("VmHWM") if reset else None
    return {"rss_before_mb": before, "peak_rss_mb": peak,
            "peak_over_before_mb": peak - before if peak is not None and before is not None else None}


def _cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) used by this process, and by the whole machine (0 without /proc/stat)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        machine = (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        machine = 0.0
    return usage.ru_utime + usage.ru_stime, machine


def _cpu_used(start: tuple[float, float]) -> dict:
    """Our CPU seconds since `start`, and the other processes' (a busy machine inflates the times)."""
    ours, machine = (b - a for a, b in zip(start, _cpu_s()))
    return {"cpu_s": ours, "other_processes_cpu_s": max(0.0, machine - ours)}


def _contended(r: dict) -> bool:
    """Other processes used more than a fifth of a core on average during the phase."""
    return r["other_processes_cpu_s"] > BUSY_CORES * r["total_s"]


def run_lightgbm(X_train, y_train, X_test, y_test, params: dict, rounds: int) -> dict:
    """Dataset construction and training timed apart; test AUC; peak memory of the phase."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    gc.collect()
    before, reset, cpu = _status_mb("VmRSS"), _reset_peak(), _cpu_s()
    t0 = time.perf_counter()
    dtrain = lgb.Dataset(X_train, label=y_train, categorical_feature="auto", params=params)
    dtrain.construct()
    t1 = time.perf_counter()
    booster = lgb.train(params, dtrain, num_boost_round=rounds)
    t2 = time.perf_counter()
    cpu_used, memory = _cpu_used(cpu), _memory(before, reset)
    assert booster.num_trees() == rounds, f"expected {rounds} trees, got {booster.num_trees()}"
    auc = roc_auc_score(y_test, booster.predict(X_test, num_threads=params.get("num_threads", 0)))
    r = {"dataset_s": t1 - t0, "train_s": t2 - t1, "total_s": t2 - t0, "test_auc": float(auc), **cpu_used, **memory}
    return {**r, "contended": _contended(r)}


def run_histgb(X_train, y_train, X_test, y_test, settings: dict) -> dict:
    """HistGradientBoostingClassifier.fit (binning included) on 2 OpenMP threads; test AUC; peak memory."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    gc.collect()
    with threadpool_limits(limits=2, user_api="openmp"):
        before, reset, cpu = _status_mb("VmRSS"), _reset_peak(), _cpu_s()
        clf = HistGradientBoostingClassifier(**settings)
        t0 = time.perf_counter()
        clf.fit(X_train, y_train)
        t1 = time.perf_counter()
        cpu_used, memory = _cpu_used(cpu), _memory(before, reset)
        assert clf.n_iter_ == settings["max_iter"], f"expected {settings['max_iter']} iterations, got {clf.n_iter_}"
        auc = roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1])
    r = {"fit_s": t1 - t0, "total_s": t1 - t0, "test_auc": float(auc), **cpu_used, **memory}
    return {**r, "contended": _contended(r)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--variants", action="store_true", help="also time max_bin 63 and force_col_wise/row_wise")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="train.lgbm and train.seed come from here")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "train_speed.json")
    args = ap.parse_args()

    import lightgbm as lgb
    import pandas as pd
    import sklearn

    from leadscore.config.params import load_params

    train_params = load_params(args.params).train
    # As training/train.py trains: train.lgbm plus the seed and deterministic mode.
    lgb_params = {**train_params.lgbm, "seed": train_params.seed, "deterministic": True}
    # The peer's equivalents (LightGBM's defaults where params.yaml leaves a setting out).
    hgb_settings = {
        "max_iter": args.rounds, "learning_rate": lgb_params.get("learning_rate", 0.1),
        "max_leaf_nodes": lgb_params.get("num_leaves", 31), "min_samples_leaf": lgb_params.get("min_data_in_leaf", 20),
        "l2_regularization": lgb_params.get("lambda_l2", 0.0), "max_bins": 255, "categorical_features": "from_dtype",
        "early_stopping": False, "random_state": train_params.seed,
    }

    t0 = time.perf_counter()
    X, y = make_table(args.rows)
    data_s = time.perf_counter() - t0
    cut = int(round(len(X) * (1 - TEST_SHARE)))  # rows are in time order: the latest 15 % are the test set
    X_train, X_test, y_train, y_test = X.iloc[:cut], X.iloc[cut:], y[:cut], y[cut:]
    n_cat = int(sum(isinstance(d, pd.CategoricalDtype) for d in X.dtypes))
    print(f"data: {len(X):,} rows × {X.shape[1]} features ({X.shape[1] - n_cat} numeric, {n_cat} categorical) "
          f"in {data_s:.1f} s; train {len(X_train):,} rows ({y_train.mean():.2%} positive), "
          f"test {len(X_test):,} rows ({y_test.mean():.2%} positive)")
    print(f"LightGBM {lgb.__version__}: {args.rounds} rounds, {lgb_params}", flush=True)

    lgbm = run_lightgbm(X_train, y_train, X_test, y_test, lgb_params, args.rounds)
    print(f"  dataset {lgbm['dataset_s']:.1f} s + training {lgbm['train_s']:.1f} s = {lgbm['total_s']:.1f} s, "
          f"test AUC {lgbm['test_auc']:.4f}", flush=True)

    variants = []
    missed = lgbm["total_s"] > TARGET_S
    if args.variants or missed:
        if missed:
            print(f"  missed the {TARGET_S:.0f} s target: timing variants")
        for extra in ({"max_bin": 63}, {"force_col_wise": True}, {"force_row_wise": True},
                      {"max_bin": 63, "force_col_wise": True}):
            r = run_lightgbm(X_train, y_train, X_test, y_test, {**lgb_params, **extra}, args.rounds)
            variants.append({"extra": extra, **r})
            print(f"  variant {extra}: dataset {r['dataset_s']:.1f} s + training {r['train_s']:.1f} s "
                  f"= {r['total_s']:.1f} s, test AUC {r['test_auc']:.4f}", flush=True)

    print(f"scikit-learn {sklearn.__version__} HistGradientBoostingClassifier: {hgb_settings}", flush=True)
    hgb = run_histgb(X_train, y_train, X_test, y_test, hgb_settings)
    ratio = hgb["total_s"] / lgbm["total_s"]

    def line(name, r):
        peak = "n/a" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb'] / 1024:.2f} GiB"
        dataset = f"{r['dataset_s']:.1f}" if "dataset_s" in r else "(in fit)"
        print(f"{name + (' *' if r['contended'] else ''):<38}{dataset:>10}{r.get('train_s', r.get('fit_s')):>10.1f}"
              f"{r['total_s']:>10.1f}{r['cpu_s']:>8.0f}{r['other_processes_cpu_s']:>8.0f}{r['test_auc']:>10.4f}{peak:>11}")

    print(f"\n{'model':<38}{'dataset s':>10}{'train s':>10}{'total s':>10}{'cpu s':>8}{'others':>8}"
          f"{'test AUC':>10}{'peak RSS':>11}")
    line("LightGBM (train.lgbm)", lgbm)
    for v in variants:
        line("  + " + ", ".join(f"{k}={val}" for k, val in v["extra"].items()), v)
    line("HistGradientBoosting (fit)", hgb)
    print(f"ratio HistGB / LightGBM total time: {ratio:.2f}×; "
          f"LightGBM ≤ {TARGET_S:.0f} s (dataset + training): {'met' if not missed else 'MISSED'}")
    print("cpu s: this process's CPU seconds; others: CPU seconds of other processes meanwhile; peak RSS includes the data")
    if any(r["contended"] for r in [lgbm, *variants, hgb]):
        print(f"* other processes used more than {BUSY_CORES} cores on average: that time is inflated")

    result = {
        "rows": len(X), "features": X.shape[1], "numeric_features": X.shape[1] - n_cat, "categorical_features": n_cat,
        "train_rows": len(X_train), "test_rows": len(X_test),
        "positive_rate_train": float(y_train.mean()), "positive_rate_test": float(y_test.mean()),
        "params_file": str(args.params), "rounds": args.rounds, "target_s": TARGET_S, "target_met": not missed, "data_seed": SEED, "data_s": data_s,
        "lightgbm": {"version": lgb.__version__, "settings": {"max_bin": 255, **lgb_params}, **lgbm},
        "lightgbm_variants": variants,
        "histgb": {"version": sklearn.__version__, "settings": hgb_settings, "omp_threads": 2, **hgb},
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "ratio_histgb_vs_lightgbm": ratio,
        "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
        "machine": {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
                    "processor": platform.processor() or platform.machine()},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
