"""Benchmarks: each figure beside a peer measured in the same run. Regenerates the README table.

    make bench            # or: .venv/bin/python bench/run.py [--leads N]

Nothing here is a test: numbers are printed and written to bench/results.json, and the
performance table in README.md (between the bench markers) is rewritten from them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _timeit(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def train_speed_row(ts: dict) -> tuple[str, str, str, str]:
    """The README row for bench/train_speed.json: LightGBM at scale beside HistGradientBoosting."""
    lg, hgb = ts["lightgbm"], ts["histgb"]
    target = f"≤ {ts['target_s']:.0f} s on {ts['machine']['cores']} cores: {'met' if ts['target_met'] else 'missed'}"
    busy = " (machine busy: inflated)"
    return ("training at scale (fixed rounds, synthetic)",
            f"{ts['rows']:,} snapshots × {ts['features']} features, {ts['rounds']} trees × ≤{lg['settings']['num_leaves']} leaves",
            f"LightGBM {lg['total_s']:.1f} s (dataset {lg['dataset_s']:.1f} s + training {lg['train_s']:.1f} s)"
            f"{busy if lg.get('contended') else ''}, test AUC {lg['test_auc']:.3f}; {target}",
            f"scikit-learn HistGradientBoosting {hgb['total_s']:.1f} s{busy if hgb.get('contended') else ''}, "
            f"AUC {hgb['test_auc']:.3f} "
            f"({ts['ratio_histgb_vs_lightgbm']:.1f}× LightGBM's time)")


def serve_speed_rows(sp: dict) -> list[tuple[str, str, str, str]]:
    """README rows for bench/serve_speed.json: the live API over HTTP beside `mlflow models serve`."""
    busy = " (machine busy: inflated)"
    quick = " (quick smoke run)" if sp.get("quick") else ""
    lat, thr, pay = sp["latency"], sp["throughput"], sp["payload"]
    acts = pay["activities"]
    workers = f"{sp['workers']} worker{'s' if sp['workers'] != 1 else ''}"
    ms = lambda r: f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
    target = f"target p99 ≤ {lat['target_p99_ms']:.0f} ms: {'met' if lat['target_met'] else 'missed'}"
    rows = [("one lead over HTTP: features from the raw activity log, score, reasons, matrix",
             f"{lat['ours']['n']:,} requests one at a time, {pay['leads']} leads × {acts['median']:.0f} activities "
             f"({acts['min']}–{acts['max']}), {workers}{quick}",
             f"`POST /score` {ms(lat['ours'])}{busy if lat.get('busy') else ''}; {target}",
             f"`mlflow models serve`, same leads as precomputed features, probability only: {ms(lat['mlflow'])}; "
             f"the same work in process (`score_one`): {ms(sp['in_process'])}; `GET /livez` {ms(lat['livez'])}")]
    rules = sp.get("in_process_rules")
    if rules:  # the fallback's live path beside the model's, lead by lead in turns in one loop
        model = sp["in_process"]
        rows.append(("single lead, SLA rules (the fallback) beside the model, in process",
                     f"{rules['n']:,} requests each, in turns, {pay['leads']} leads × {acts['median']:.0f} activities{quick}",
                     f"rules live path {ms(rules)} (rules/model p99 {rules['ratio_p99_rules_over_model']:.2f}×; goal "
                     f"{rules['goal']}: {'met' if rules['goal_met'] else 'missed'})",
                     f"model live path (`score_one`) {ms(model)}"))
    ratio = thr["ratio_ours_over_mlflow"]
    ours, ml = thr["ours"], thr["mlflow"]
    rows.append(("API throughput, one lead per request",
                 f"{thr['concurrency']} closed-loop clients, {thr['rounds']} × {thr['duration_s']:.0f} s each after "
                 f"{thr['warmup_s']:.0f} s warm-up{', ABBA order' if thr['rounds'] > 1 else ''}, {workers} each{quick}",
                 f"{ours['req_per_s']:,.0f} req/s, p99 {ours['p99_ms']:.0f} ms, "
                 f"{ours['server_cpu_ms_per_request']:.1f} ms server CPU per request{busy if ours['busy'] else ''}",
                 f"`mlflow models serve --env-manager local` {ml['req_per_s']:,.0f} req/s, p99 {ml['p99_ms']:.0f} ms, "
                 f"{ml['server_cpu_ms_per_request']:.1f} ms CPU per request{busy if ml['busy'] else ''}, doing less "
                 f"(features given, no reasons): ours/MLflow {ratio:.1f}× (target ≥ {thr['target_ratio']:.0f}×: "
                 f"{'met' if thr['target_met'] else 'missed'})"))
    return rows


def bare_peer(o: dict) -> str:
    """The shed latency's peer: the same client, at the same moment, against bench/_bare_shed.py."""
    peer = o.get("shed_probe_peer", {}).get("503")
    if not peer:
        return ""
    return (f"; a 503 from a bare uvloop + httptools server (bench/_bare_shed.py) to the same client at the "
            f"same moment: p50 {peer['p50_ms']:.1f} ms, p95 {peer['p95_ms']:.1f} ms")


def serve_load_rows(ld: dict) -> list[tuple[str, str, str, str]]:
    """README rows for bench/serve_load.json: locust, sustained traffic and overload, each overload
    phase with its goodput and the shed latency against the goals of bench/serve_load.py."""
    busy = " (machine busy: inflated)"
    quick = " (quick smoke run)" if ld.get("quick") else ""
    s = ld["sustained"]
    s200 = s["latency_ms_by_status"].get("200", {})
    not_ok = sum(n for k, n in s["statuses"].items() if k != "200")
    rec = ld.get("recovered_after_s")
    goals = ld.get("goals", {})

    def against(name: str) -> str:
        g = goals.get(name)
        if not g:
            return ""
        sign = "<" if "ms" in name else "≥"
        goal = f"{g['goal']:g} ms" if "ms" in name else f"{g['goal']:.0%}"
        return f" (goal {sign} {goal}: {'met' if g['met'] else 'missed'})"

    def failed(phase: str, suffix: str) -> list[str]:  # this phase's failures (its checks and its goals)
        return [f for f in ld["failures"] if f.startswith(f"{phase}:") or f"_{suffix} " in f or "after the overload" in f]

    rows = [("load test (locust): sustained",
             f"{s['users']} users offering {s['offered_req_per_s']:,.0f} req/s for {s['duration_s']:.0f} s, "
             f"{'HAProxy in front (serving/front.py)' if ld.get('front') else 'no front (the worker alone)'}{quick}",
             f"{s['ok_req_per_s']:,.0f} req/s answered, p50 {s200.get('p50_ms', 0):.0f} ms, p99 {s200.get('p99_ms', 0):.0f} ms, "
             f"{not_ok} not 200{busy if s['busy'] else ''}",
             f"closed-loop capacity in the same run ({ld['probe']['users']} users): {ld['capacity_req_per_s']:,.0f} req/s")]
    for phase in ld.get("overloads", ["overload"]):
        o = ld[phase]
        o200 = o["latency_ms_by_status"].get("200", {})
        shed = {k: n for k, n in o["statuses"].items() if k in ("429", "503")}
        other = sum(n for k, n in o["statuses"].items() if k not in ("200", "429", "503"))
        shed_text = ", ".join(f"{n:,} × {k}" for k, n in shed.items()) or "none shed"
        honour = o.get("honour_retry_after")
        suffix = "retry_after" if honour else "at_once"
        extra = o.get("shed_probe", {}).get("503")
        shed_latency = (f"; a 503 to another caller p50 {extra['p50_ms']:.1f} ms, p95 {extra['p95_ms']:.1f} ms"
                        f"{against('shed_p95_ms_' + suffix)}" if extra else "")
        rows.append((f"load test (locust): overload, {'clients honour Retry-After' if honour else 'clients retry at once'}",
                     f"{o['users']} users without pause for {o['duration_s']:.0f} s"
                     f"{', ' + str(ld['max_in_flight_per_worker']) + ' in flight admitted per worker' if ld.get('max_in_flight_per_worker') else ''}"
                     f"{quick}",
                     f"{o['statuses'].get('200', 0):,} × 200: {o['ok_req_per_s']:,.0f} req/s = "
                     f"{o['ok_req_per_s'] / ld['capacity_req_per_s']:.0%} of capacity{against('goodput_' + suffix)}, p99 "
                     f"{o200.get('p99_ms', 0):.0f} ms; {shed_text}{shed_latency}; other statuses, errors and timeouts: "
                     f"{other}{busy if o['busy'] else ''}",
                     f"the capacity above{bare_peer(o)}; "
                     f"{'passed' if not failed(phase, suffix) else 'FAILED: ' + '; '.join(failed(phase, suffix))}"
                     f"{'; 200 again ' + format(rec, '.1f') + ' s after' if rec is not None else ''}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=5000)
    ap.add_argument("--single", type=int, default=500, help="single-lead requests to time")
    args = ap.parse_args()

    import pandas as pd

    from leadscore.config.params import load_params
    from leadscore.demo import write_demo_export
    from leadscore.features.build import compute_features, encode
    from leadscore.features.contract import read_export
    from leadscore.features.snapshots import scoring_snapshots
    from leadscore.models.base import score_leads
    from leadscore.models.rules import RuleScorer, load_rules
    from leadscore.training.dataset import build_dataset, load_dataset
    from leadscore.training.train import train_model

    params = load_params(ROOT / "params.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_demo_export(tmp / "export", n_leads=args.leads, seed=1)
        export = read_export(tmp / "export")
        t0 = time.perf_counter()
        summary = build_dataset(export, params, tmp / "dataset")
        t_features = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = train_model(tmp / "dataset", params, tmp / "model")
        t_train = time.perf_counter() - t0
        rules = RuleScorer(load_rules(), params.features)
        table, spec = load_dataset(tmp / "dataset")
        # peer for the feature pipeline: the same code, one snapshot at a time (the live path)
        sample = table.sample(300, random_state=0)
        acts_by_lead = dict(tuple(export.activities.groupby("lead_id")))
        leads_by_id = dict(tuple(export.leads.groupby("lead_id")))
        t0 = time.perf_counter()
        for lead_id, as_of_ in zip(sample["lead_id"], sample["as_of"]):
            compute_features(pd.DataFrame({"lead_id": [lead_id], "as_of": [as_of_]}), leads_by_id[lead_id],
                             acts_by_lead.get(lead_id, export.activities.iloc[:0]), spec)
        per_row = (time.perf_counter() - t0) / len(sample)
        rows.append(("point-in-time training set (snapshots, labels, features)", f"{summary['snapshots']:,} snapshots",
                     f"{summary['snapshots'] / t_features:,.0f} snapshots/s (batch)",
                     f"one snapshot at a time: {1 / per_row:,.0f} snapshots/s"))
        # peer for training: scikit-learn's histogram GBM on the same rows, same number of trees
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score

        horizon = pd.Timedelta(days=summary["horizon_days"])
        test_start = pd.Timestamp(summary["test_start"])
        fit_rows = table[(table["split"] != "test") & (table["as_of"] + horizon <= test_start)]
        test_rows = table[table["split"] == "test"]
        hgb = HistGradientBoostingClassifier(max_iter=model.info["trees"], learning_rate=params.train.lgbm["learning_rate"],
                                             max_leaf_nodes=params.train.lgbm["num_leaves"], categorical_features="from_dtype",
                                             early_stopping=False, random_state=0)
        enc = lambda d: encode(d[spec.names], spec)
        import lightgbm as lgb

        X_fit = enc(fit_rows)
        t0 = time.perf_counter()
        lgb.train({**params.train.lgbm, "seed": params.train.seed}, lgb.Dataset(X_fit, fit_rows["label"]),
                  num_boost_round=model.info["trees"])
        t_refit = time.perf_counter() - t0
        t0 = time.perf_counter()
        hgb.fit(X_fit, fit_rows["label"])
        t_hgb = time.perf_counter() - t0
        auc_lgb = roc_auc_score(test_rows["label"], model.predict_proba(test_rows[spec.names]))
        auc_hgb = roc_auc_score(test_rows["label"], hgb.predict_proba(enc(test_rows))[:, 1])
        rows.append(("training (early stopping on validation, then refit)", f"{model.info['train_rows']:,} rows × {len(spec.names)} features",
                     f"LightGBM refit {t_refit:.1f} s ({t_train:.1f} s with early stopping); {model.info['trees']} trees; test AUC {auc_lgb:.3f}",
                     f"scikit-learn HistGradientBoosting, same rows and trees: {t_hgb:.1f} s; test AUC {auc_hgb:.3f}"))

        as_of = export.data_end
        snaps = scoring_snapshots(export, as_of)
        batch = {}
        for name, scorer in (("model", model), ("rules", rules)):
            times = _timeit(lambda s=scorer: score_leads(s, snaps, export.leads, export.activities, top_k=3), 3)
            batch[name] = len(snaps) / statistics.median(times)
        rows.append(("batch score + 3 reasons", f"{len(snaps):,} leads",
                     f"model {batch['model']:,.0f} leads/s", f"rules {batch['rules']:,.0f} leads/s "
                     f"(model/rules {batch['model'] / batch['rules']:.2f}×)"))

        # single lead, in process: what one API call costs without HTTP. The live path (features
        # without pandas, NumPy into LightGBM on one thread) against the same model through the
        # pandas batch code one lead at a time; and the live path on a 300 trees × 31 leaves model.
        import lightgbm as lgb2

        from leadscore.features.online import activity_lists, as_of_micros, profile_dicts
        from leadscore.models.lgbm import LeadModel

        acts = export.activities.set_index("lead_id", drop=False)
        leads = export.leads.set_index("lead_id", drop=False)
        ids = snaps["lead_id"].sample(min(args.single, len(snaps)), random_state=0).tolist()
        profiles, histories, t_us = profile_dicts(export.leads), activity_lists(export.activities), as_of_micros(as_of)
        big_booster = lgb2.train({**params.train.lgbm, "num_leaves": 31, "min_data_in_leaf": 20, "seed": 1},
                                 lgb2.Dataset(X_fit, fit_rows["label"]), num_boost_round=300)
        big = LeadModel(big_booster, spec, model.grades, {}, calibrator=model.calibrator, explain=model.explain)
        leaves = max(t["num_leaves"] for t in big_booster.dump_model()["tree_info"])

        def live(m):
            m.score_one(profiles[ids[0]], histories.get(ids[0], []), t_us)  # warm-up: builds the TreeSHAP tables
            lat = []
            for lead_id in ids:
                t0 = time.perf_counter()
                m.score_one(profiles[lead_id], histories.get(lead_id, []), t_us, top_k=3)
                lat.append(time.perf_counter() - t0)
            return lat

        def per_lead(scorer, lead_ids):
            """The pandas batch code, one lead at a time."""
            lat = []
            for lead_id in lead_ids:
                one = snaps[snaps["lead_id"] == lead_id]
                lead = leads.loc[[lead_id]].reset_index(drop=True)
                act = acts.loc[[lead_id]].reset_index(drop=True) if lead_id in acts.index else acts.iloc[:0]
                t0 = time.perf_counter()
                score_leads(scorer, one, lead, act, top_k=3)
                lat.append(time.perf_counter() - t0)
            return lat

        pandas_path = per_lead(model, ids)
        fast, fast_big = live(model), live(big)
        ms = lambda v: f"median {statistics.median(v) * 1e3:.2f} ms, p99 {_p(v, 0.99) * 1e3:.2f} ms"
        rows.append(("single lead score + reasons + matrix, in process", f"{len(ids)} leads, {model.info['trees']} trees × ≤{params.train.lgbm['num_leaves']} leaves",
                     f"live path {ms(fast)}", f"pandas batch code per lead: {ms(pandas_path)} "
                     f"({statistics.median(pandas_path) / statistics.median(fast):.0f}× slower)"))
        rows.append(("single lead score + reasons + matrix, in process", f"{len(ids)} leads, 300 trees × {leaves} leaves",
                     f"live path {ms(fast_big)}", f"target p99 ≤ 3 ms: {'met' if _p(fast_big, 0.99) <= 0.003 else 'missed'}"))

        # rules, one lead: the API's fallback (online features, then the rules on one row) against
        # the pandas batch code one lead at a time
        from leadscore.features.online import OnlineFeatures
        from leadscore.serving.live import score_rules

        rules_online = OnlineFeatures(rules.spec)
        fallback = []
        for lead_id in ids[:200]:
            t0 = time.perf_counter()
            score_rules(rules, rules_online, [(profiles[lead_id], histories.get(lead_id, []))], t_us, 3, "en")
            fallback.append(time.perf_counter() - t0)
        lat = per_lead(rules, ids[:200])
        rows.append(("single lead, SLA rules (fallback), in process", "200 leads", f"live fallback path {ms(fallback)}",
                     f"pandas batch code per lead: {ms(lat)}"))

    shap_file = ROOT / "bench" / "shap_speed.json"
    if shap_file.exists():  # written by bench/shap_speed.py, which `make bench` runs first
        sh = json.loads(shap_file.read_text())
        rows.append(("exact SHAP explanations (batch)", f"{sh['rows']:,} rows, {sh['trees']} trees × {sh['leaves']} leaves",
                     f"leadscore FastTreeShap {sh['fast_rows_per_s']:,.0f} rows/s (largest difference to shap {sh['max_abs_diff_vs_shap']:.1e})",
                     f"shap.TreeExplainer {sh['shap_rows_per_s']:,.0f} rows/s ({sh['ratio_vs_shap']:.1f}× slower); "
                     f"LightGBM pred_contrib {sh['pred_contrib_rows_per_s']:,.0f} rows/s"))

    scale_file = ROOT / "bench" / "features_scale.json"
    if scale_file.exists():  # written by bench/features_scale.py, which `make bench` runs first
        scale = json.loads(scale_file.read_text())
        for size in sorted({r["activities"] for r in scale}):
            by = {r["engine"]: r for r in scale if r["activities"] == size}
            duck, pandas_ = by.get("duckdb", {}), by.get("numpy", {})

            def fmt(r):
                return r["error"] if "error" in r else f"{r['seconds']:.1f} s, peak {r['peak_mb'] / 1024:.1f} GiB"

            ratio = (f" (pandas/DuckDB time {pandas_['seconds'] / duck['seconds']:.2f}×)"
                     if "seconds" in duck and "seconds" in pandas_ else "")
            rows.append(("batch features, synthetic export", f"{size:,} activities, {duck.get('snapshots', 0):,} snapshots",
                         f"Ibis on DuckDB {fmt(duck)}", f"in-process pandas/numpy {fmt(pandas_)}{ratio}"))

    train_file = ROOT / "bench" / "train_speed.json"
    if train_file.exists():  # written by bench/train_speed.py, which `make bench` runs first
        rows.append(train_speed_row(json.loads(train_file.read_text())))

    speed_file = ROOT / "bench" / "serve_speed.json"
    if speed_file.exists():  # written by bench/serve_speed.py, which `make bench` runs first
        rows += serve_speed_rows(json.loads(speed_file.read_text()))

    load_file = ROOT / "bench" / "serve_load.json"
    if load_file.exists():  # written by bench/serve_load.py, which `make bench` runs first
        rows += serve_load_rows(json.loads(load_file.read_text()))

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results = {"machine": machine, "rows": rows}
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1))
    table = ["| what | size | leadscore | peer in the same run |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(table) + f"\n\nMeasured by `make bench` on {machine}.\n"
    print(text)
    readme = ROOT / "README.md"
    content = readme.read_text()
    if START in content and END in content:
        head, rest = content.split(START, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(f"{head}{START}\n{text}{END}{tail}")
        print("README.md performance table updated")


if __name__ == "__main__":
    main()
