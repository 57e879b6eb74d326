"""The live scoring API over HTTP: one-lead latency, and throughput beside `mlflow models serve`.

    .venv/bin/python bench/serve_speed.py [--workdir DIR] [--requests 1000] [--concurrency 8] [--duration 15] [--rounds 2]
    .venv/bin/python bench/serve_speed.py --quick      # a short smoke run (~1 minute with a reused --workdir)
    .venv/bin/python bench/serve_speed.py --in-process-only   # model vs rules in process, no servers

Setup: a private MLflow store (``--workdir``, else a temporary folder; reused when it already
holds one) with a champion trained on a 5,000-lead demo export (seed 1) the way the tests'
``trained`` fixture does it; then both servers on the same machine, with the same number of
workers (our BentoML service's ``workers``, default 1):

- ours: ``bentoml serve leadscore.serving.service:LeadScoring``; ``POST /score`` gets the lead's profile and
  its raw activity log and builds the features, scores, and computes SHAP reasons, grade and the
  fit × interest matrix;
- peer: ``mlflow models serve -m models:/lead-scoring@champion --env-manager local``;
  ``POST /invocations`` gets the ``dataframe_split`` of the *same* lead's raw features, computed
  once by this script with the batch path (``features.build.compute_features``), and returns the
  probability only. MLflow does less work per request than ours; both must give the same probability.

Payloads: the open leads at the end of the export whose activity count before ``as_of`` is
nearest 50 (``--payload-leads``, default 100), one lead per request, the same leads for both.

1. Latency: closed loop, one request at a time, after warm-up; the servers take turns in blocks
   of 50 requests. Printed beside MLflow's, ``GET /livez`` on our server (the HTTP floor) and
   ``LeadModel.score_one`` in this process on the same leads (the work without HTTP).
   Target: p99 ≤ 10 ms on 2 cores.
   In the same loop, lead by lead in turns, the SLA rules' live path (``serving.live.score_rules``,
   what the fallback runs: online features, points, grade, reasons, matrix) on the same leads.
   Goal: the fallback at least as fast as the model, rules p99 ≤ model p99 (``--in-process-only``
   measures just these two, without servers; ``--in-process-requests`` per scorer).
2. Throughput: ``--concurrency`` closed-loop clients (threads, each with its own httpx client;
   the same client code for both servers) for ``--duration`` seconds after ``--warmup`` seconds,
   ``--rounds`` times in ABBA order (ours, MLflow, MLflow, ours, …) so drift in machine load hits
   both. req/s counts 200s only; every other status or connection error is reported. Also the
   server's CPU time per request, and other processes' CPU time (a busy phase is flagged).
   Target: ours ≥ 3× MLflow's req/s.

The client shares the 2 cores with the server it measures. Writes bench/serve_speed.json
(``--in-process-only``: bench/serve_speed_in_process.json).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import _serving as S  # noqa: E402

LATENCY_TARGET_MS = 10.0
RATIO_TARGET = 3.0
RULES_GOAL = "rules p99 ≤ model p99"  # the fallback must never be the slow path
BLOCK = 50  # latency: requests per turn before the other server's turn
MLFLOW_NOTE = ("MLflow gets the lead's raw features precomputed by the bench and returns the probability only; "
               "ours builds the features from the raw activity log and adds SHAP reasons, grade and matrix")


def _client(timeout: float):
    import httpx

    return httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


def _post(client, url: str, body: bytes, headers: dict) -> tuple[int | str, float, object]:
    """(status or error name, seconds, response or None). A 200 of ours that the SLA rules answered
    (the model missed its deadline or failed) is "200 rules", so it is never counted as the model's."""
    import httpx

    t0 = time.perf_counter()
    try:
        r = client.post(url, content=body, headers=headers)
        seconds = time.perf_counter() - t0
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - t0, None
    if r.status_code == 200 and b'"scorer":"rules"' in r.content:
        return "200 rules", seconds, r
    return r.status_code, seconds, r


def _get(client, url: str) -> tuple[int | str, float, object]:
    import httpx

    t0 = time.perf_counter()
    try:
        r = client.get(url)
        return r.status_code, time.perf_counter() - t0, r
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - t0, None


def _statuses(values) -> dict[str, int]:
    """Count per status (or error name), as strings so that the JSON keys read the same."""
    return dict(sorted(Counter(str(v) for v in values).items()))


def check_answers(ours: S.Server, mlflow: S.Server, bodies: list[bytes], ml_bodies: list[bytes], ids: list[str],
                  headers: dict) -> dict:
    """Every lead answered by both, by the model (not the rules fallback), with the same probability."""
    diffs, problems = [], []
    with _client(60) as c:
        for lead_id, body, ml_body in zip(ids, bodies, ml_bodies):
            s1, _, r1 = _post(c, f"{ours.base}/score", body, headers)
            s2, _, r2 = _post(c, f"{mlflow.base}/invocations", ml_body, headers)
            if s1 != 200 or s2 != 200:
                problems.append(f"{lead_id}: /score {s1} {r1.text[:200] if r1 is not None else ''}; "
                                f"/invocations {s2} {r2.text[:200] if r2 is not None else ''}")
                continue
            answer = r1.json()[0]
            if answer["scorer"] != "model":
                problems.append(f"{lead_id}: answered by {answer['scorer']} ({answer.get('fallback_reason')}), not the model")
            diffs.append(abs(answer["probability"] - r2.json()["predictions"][0]["probability"]))
        # Auth: a request without a key must be refused once auth is in place (until then it is not).
        s_none, _, _ = _post(c, f"{ours.base}/score", bodies[0], {"content-type": "application/json"})
        s_bad, _, _ = _post(c, f"{ours.base}/score", bodies[0],
                            {"content-type": "application/json", "authorization": "Bearer not-a-key"})
    return {"max_abs_diff_probability": max(diffs) if diffs else None, "problems": problems,
            "without_key_status": s_none, "wrong_key_status": s_bad,
            "auth_enforced": s_none in (401, 403) and s_bad in (401, 403)}


def latency(ours: S.Server, mlflow: S.Server, bodies, ml_bodies, headers, n: int, warmup: int) -> dict:
    """Closed loop, one request at a time; the servers take turns in blocks of BLOCK requests."""
    plan = [("ours", f"{ours.base}/score", bodies), ("mlflow", f"{mlflow.base}/invocations", ml_bodies)]
    times: dict[str, list[float]] = {"ours": [], "mlflow": []}
    statuses: dict[str, list] = {"ours": [], "mlflow": []}
    with _client(30) as c:
        for name, url, payloads in plan:  # warm-up, untimed
            for i in range(warmup):
                _post(c, url, payloads[i % len(payloads)], headers)
        with S.CpuMeter(ours, mlflow) as meter:
            done = 0
            while done < n:
                block = min(BLOCK, n - done)
                for name, url, payloads in plan:
                    for i in range(done, done + block):
                        status, seconds, _ = _post(c, url, payloads[i % len(payloads)], headers)
                        statuses[name].append(status)
                        if status == 200:
                            times[name].append(seconds)
                done += block
        livez = []
        for i in range(min(n, 500)):
            status, seconds, _ = _get(c, f"{ours.base}/livez")
            if status == 200:
                livez.append(seconds)
    busy = {k: meter.result[k] for k in ("wall_s", "other_processes_cpu_s", "busy")}
    return {"ours": {**S.ms(times["ours"]), "statuses": _statuses(statuses["ours"])},
            "mlflow": {**S.ms(times["mlflow"]), "statuses": _statuses(statuses["mlflow"])},
            "livez": S.ms(livez), **busy}


def in_process(model, rules, export, ids: list[str], as_of, n: int) -> dict:
    """The work of one request without HTTP, on the same leads in this process, lead by lead in
    turns (which scorer goes first alternates, so that neither gets the warmer caches):
    ``LeadModel.score_one`` and the SLA rules' live path (``serving.live.score_rules``, the fallback)."""
    from leadscore.features.online import OnlineFeatures, activity_lists, as_of_micros, profile_dicts
    from leadscore.serving.live import score_rules

    acts = export.activities[export.activities["occurred_at"] < as_of]
    leads = export.leads[export.leads["lead_id"].isin(ids)]
    profiles, histories, t_us = profile_dicts(leads), activity_lists(acts[acts["lead_id"].isin(ids)]), as_of_micros(as_of)
    online = OnlineFeatures(rules.spec)

    def run_model(lead_id: str) -> None:
        model.score_one(profiles[lead_id], histories.get(lead_id, []), t_us, top_k=3)

    def run_rules(lead_id: str) -> None:
        score_rules(rules, online, [(profiles[lead_id], histories.get(lead_id, []))], t_us, 3, "en")

    for lead_id in ids[:20]:  # warm-up: builds the TreeSHAP tables, fills the title caches
        run_model(lead_id)
        run_rules(lead_id)
    times: dict[str, list[float]] = {"model": [], "rules": []}
    for i in range(n):
        lead_id = ids[i % len(ids)]
        for name, run in ((("model", run_model), ("rules", run_rules)) if i % 2 == 0
                          else (("rules", run_rules), ("model", run_model))):
            t0 = time.perf_counter()
            run(lead_id)
            times[name].append(time.perf_counter() - t0)
    m, r = S.ms(times["model"]), S.ms(times["rules"])
    ratio = r["p99_ms"] / m["p99_ms"] if m["p99_ms"] else None
    return {"model": m, "rules": {**r, "ratio_p50_rules_over_model": r["p50_ms"] / m["p50_ms"] if m["p50_ms"] else None,
                                  "ratio_p99_rules_over_model": ratio, "goal": RULES_GOAL,
                                  "goal_met": ratio is not None and ratio <= 1.0}}


def closed_loop(server: S.Server, url: str, bodies: list[bytes], headers: dict, concurrency: int, duration: float,
                warmup: float, timeout: float) -> dict:
    """``concurrency`` clients, each sending its next request as soon as the last one is answered."""
    records: list[list[tuple[float, float, int | str]]] = [[] for _ in range(concurrency)]
    go = threading.Barrier(concurrency + 1)
    window: dict[str, float] = {}

    def client(k: int) -> None:
        i = k * 7  # clients start at different leads
        with _client(timeout) as c:
            go.wait()
            while time.perf_counter() < window["end"]:
                status, seconds, _ = _post(c, url, bodies[i % len(bodies)], headers)
                records[k].append((time.perf_counter(), seconds, status))
                i += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window.update(start=now + warmup, end=now + warmup + duration)
    go.wait()
    time.sleep(max(0.0, window["start"] - time.perf_counter()))
    with S.CpuMeter(server) as meter:
        time.sleep(max(0.0, window["end"] - time.perf_counter()))
    for t in threads:
        t.join(timeout + 5)
    inside = [r for rs in records for r in rs if window["start"] <= r[0] <= window["end"]]
    ok = [seconds for _, seconds, status in inside if status == 200]
    cpu = meter.result
    return {"req_per_s": len(ok) / duration, "completed": len(inside), **S.ms(ok), "_latencies": ok,
            "statuses": _statuses(status for _, _, status in inside),
            "server_cpu_ms_per_request": cpu["server_cpu_s"] / len(inside) * 1e3 if inside else None,
            "server_cores_used": cpu["server_cpu_s"] / cpu["wall_s"],
            "client_cores_used": cpu["client_cpu_s"] / cpu["wall_s"],
            "other_processes_cpu_s": cpu["other_processes_cpu_s"], "busy": cpu["busy"]}


def throughput(ours: S.Server, mlflow: S.Server, bodies, ml_bodies, headers, args) -> dict:
    """Rounds in ABBA order; req/s, latencies and CPU over all rounds of a server together."""
    sides = {"ours": (ours, f"{ours.base}/score", bodies), "mlflow": (mlflow, f"{mlflow.base}/invocations", ml_bodies)}
    order = []
    for r in range(args.rounds):
        order += ["ours", "mlflow"] if r % 2 == 0 else ["mlflow", "ours"]
    runs: dict[str, list[dict]] = {"ours": [], "mlflow": []}
    for name in order:
        server, url, payloads = sides[name]
        run = closed_loop(server, url, payloads, headers, args.concurrency, args.duration, args.warmup, args.timeout)
        runs[name].append(run)
        print(f"  {name:6s} round {len(runs[name])}: {run['req_per_s']:8.1f} req/s  p50 {run['p50_ms'] or 0:7.2f} ms  "
              f"p99 {run['p99_ms'] or 0:7.2f} ms  statuses {run['statuses']}{'  (machine busy)' if run['busy'] else ''}",
              flush=True)
    out = {}
    for name, rs in runs.items():
        latencies = [x for r in rs for x in r.pop("_latencies")]
        completed = sum(r["completed"] for r in rs)
        cpu_s = sum(r["server_cpu_ms_per_request"] * r["completed"] / 1e3 for r in rs if r["completed"])
        out[name] = {
            "req_per_s": statistics.fmean(r["req_per_s"] for r in rs),  # equal windows: all 200s / all time
            "per_round_req_per_s": [r["req_per_s"] for r in rs],
            **S.ms(latencies),
            "statuses": dict(sorted(sum((Counter(r["statuses"]) for r in rs), Counter()).items())),
            "server_cpu_ms_per_request": cpu_s / completed * 1e3 if completed else None,
            "server_cores_used": statistics.fmean(r["server_cores_used"] for r in rs),
            "client_cores_used": statistics.fmean(r["client_cores_used"] for r in rs),
            "busy": any(r["busy"] for r in rs),
            "rounds": rs,
        }
    ratio = out["ours"]["req_per_s"] / out["mlflow"]["req_per_s"] if out["mlflow"]["req_per_s"] else None
    return {"concurrency": args.concurrency, "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
            "order": order, **out, "ratio_ours_over_mlflow": ratio, "target_ratio": RATIO_TARGET,
            "target_met": ratio is not None and ratio >= RATIO_TARGET}


def rules_goal(con, rules: dict) -> None:
    """The fallback beside the model, per lead in process: the ratios and the goal."""
    met = rules["goal_met"]
    con.print(f"rules / model per lead in process: p50 {rules['ratio_p50_rules_over_model']:.2f}×, "
              f"p99 {rules['ratio_p99_rules_over_model']:.2f}× (goal {rules['goal']}: "
              f"[{'green' if met else 'red'}]{'met' if met else 'missed'}[/])")


def report_in_process(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 150)
    model, rules, pay = result["in_process"], result["in_process_rules"], result["payload"]
    f = lambda v: "—" if v is None else f"{v:.3f}"
    t = Table(title=f"one lead in process, no HTTP — {pay['leads']} leads, {pay['activities']['median']:.0f} activities "
                    f"(min {pay['activities']['min']}, max {pay['activities']['max']}), the scorers in turns")
    for col in ("", "p50 ms", "p99 ms", "max ms", "calls"):
        t.add_column(col, justify="left" if not col else "right")
    t.add_row("LeadModel.score_one (features, TreeSHAP reasons, grade, matrix)", f(model["p50_ms"]), f(model["p99_ms"]),
              f(model["max_ms"]), str(model["n"]))
    t.add_row("SLA rules score_rules (the fallback: features, points, reasons, matrix)", f(rules["p50_ms"]),
              f(rules["p99_ms"]), f(rules["max_ms"]), str(rules["n"]))
    con.print(t)
    rules_goal(con, rules)


def report(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 150)
    lat, thr, pay = result["latency"], result["throughput"], result["payload"]
    f = lambda v: "—" if v is None else f"{v:.2f}"
    t = Table(title=f"one lead per request, closed loop, concurrency 1 — {pay['leads']} leads, "
                    f"{pay['activities']['median']:.0f} activities (min {pay['activities']['min']}, max {pay['activities']['max']})")
    for col in ("", "p50 ms", "p99 ms", "max ms", "requests", "statuses"):
        t.add_column(col, justify="left" if not col or col == "statuses" else "right")
    t.add_row("leadscore POST /score (features + score + reasons)", f(lat["ours"]["p50_ms"]), f(lat["ours"]["p99_ms"]),
              f(lat["ours"]["max_ms"]), str(lat["ours"]["n"]), str(lat["ours"]["statuses"]))
    t.add_row("mlflow POST /invocations (features given, probability)", f(lat["mlflow"]["p50_ms"]), f(lat["mlflow"]["p99_ms"]),
              f(lat["mlflow"]["max_ms"]), str(lat["mlflow"]["n"]), str(lat["mlflow"]["statuses"]))
    t.add_row("leadscore GET /livez (HTTP floor)", f(lat["livez"]["p50_ms"]), f(lat["livez"]["p99_ms"]),
              f(lat["livez"]["max_ms"]), str(lat["livez"]["n"]), "")
    t.add_row("LeadModel.score_one in process (no HTTP)", f(result["in_process"]["p50_ms"]), f(result["in_process"]["p99_ms"]),
              f(result["in_process"]["max_ms"]), str(result["in_process"]["n"]), "")
    rules = result["in_process_rules"]
    t.add_row("SLA rules score_rules in process (no HTTP, the fallback)", f(rules["p50_ms"]), f(rules["p99_ms"]),
              f(rules["max_ms"]), str(rules["n"]), "")
    con.print(t)
    rules_goal(con, rules)
    met = lat["target_met"]
    con.print(f"target p99 ≤ {LATENCY_TARGET_MS:.0f} ms: [{'green' if met else 'red'}]{'met' if met else 'missed'}[/]"
              f"{'  (machine busy during the run: inflated)' if lat['busy'] else ''}")

    t = Table(title=f"throughput: {thr['concurrency']} closed-loop clients, {thr['rounds']} × {thr['duration_s']:.0f} s each "
                    f"after {thr['warmup_s']:.0f} s warm-up, {result['workers']} worker(s) each")
    for col in ("", "req/s", "per round", "p50 ms", "p99 ms", "server CPU ms/req", "server cores", "client cores", "statuses"):
        t.add_column(col, justify="left" if not col or col == "statuses" else "right")
    for name, label in (("ours", "leadscore /score"), ("mlflow", "mlflow models serve /invocations")):
        r = thr[name]
        t.add_row(label + (" *" if r["busy"] else ""), f"{r['req_per_s']:.1f}",
                  ", ".join(f"{v:.0f}" for v in r["per_round_req_per_s"]), f(r["p50_ms"]), f(r["p99_ms"]),
                  f(r["server_cpu_ms_per_request"]), f(r["server_cores_used"]), f(r["client_cores_used"]), str(r["statuses"]))
    con.print(t)
    ratio = thr["ratio_ours_over_mlflow"]
    con.print(f"ours / MLflow: [bold]{ratio:.2f}×[/] (target ≥ {RATIO_TARGET:.0f}×: "
              f"[{'green' if thr['target_met'] else 'red'}]{'met' if thr['target_met'] else 'missed'}[/])"
              if ratio else "no MLflow throughput")
    con.print(f"[dim]{MLFLOW_NOTE}. * = other processes used > {S.BUSY_CORES} cores on average (inflated).[/]")
    chk = result["checks"]
    con.print(f"same probability from both servers: largest difference {chk['max_abs_diff_probability']:.1e}; "
              f"auth: no key → {chk['without_key_status']}, wrong key → {chk['wrong_key_status']}"
              f"{'' if chk['auth_enforced'] else ' [yellow](not enforced)[/]'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    S.add_registry_args(ap)
    ap.add_argument("--requests", type=int, default=1000, help="timed latency requests per server")
    ap.add_argument("--warmup-requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8, help="closed-loop clients in the throughput phase")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds measured per throughput round")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measured round")
    ap.add_argument("--rounds", type=int, default=2, help="throughput rounds per server, in ABBA order")
    ap.add_argument("--timeout", type=float, default=30.0, help="client timeout per request (s)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 requests, 1 round of 3 s")
    ap.add_argument("--in-process-requests", type=int, default=2000,
                    help="calls per scorer in the in-process model vs rules comparison")
    ap.add_argument("--in-process-only", action="store_true",
                    help="only the in-process model vs rules comparison: no servers, no HTTP")
    ap.add_argument("--out", type=Path, help="default bench/serve_speed.json (--in-process-only: "
                                             "bench/serve_speed_in_process.json)")
    args = ap.parse_args()
    if args.out is None:
        args.out = ROOT / "bench" / ("serve_speed_in_process.json" if args.in_process_only else "serve_speed.json")
    if args.quick:
        args.requests, args.warmup_requests, args.duration, args.warmup, args.rounds = 100, 20, 3.0, 1.0, 1
    S.on_signals()

    with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        print(f"registry in {workdir} …", flush=True)
        work = S.champion(workdir, args.leads, args.seed)
        how = "reused" if work["reused"] else f"built in {work['build_s']:.0f} s"
        print(f"champion: version {work['version']}, {work['trees']} trees ({how})", flush=True)

        from leadscore.config.params import load_params
        from leadscore.features.contract import read_export
        from leadscore.models.lgbm import LeadModel
        from leadscore.models.rules import RuleScorer, load_rules

        config = S.service_config()
        workers = config["workers"]
        export = read_export(work["export"])
        as_of = export.data_end
        ids, counts = S.single_lead_leads(export, as_of, args.payload_leads, args.activities)
        model = LeadModel.load(work["model_dir"], version=work["version"])
        # The server's fallback with the default settings: the packaged SLA on params.yaml's features.
        rules = RuleScorer(load_rules(), load_params(ROOT / "params.yaml").features)
        acts = sorted(counts.values())
        payload = {"leads": len(ids), "as_of": str(as_of), "top_k": 3,
                   "activities": {"min": acts[0], "median": statistics.median(acts), "max": acts[-1]}}
        if args.in_process_only:
            print(f"{len(ids)} leads with {acts[0]}–{acts[-1]} activities (median {statistics.median(acts):.0f}) at "
                  f"{as_of}; in process only …", flush=True)
            both = in_process(model, rules, export, ids, as_of, args.in_process_requests)
            result = {"machine": S.machine(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "model": {"version": work["version"], "trees": work["trees"], "demo_leads": args.leads,
                                "seed": args.seed},
                      "payload": payload, "in_process": both["model"], "in_process_rules": both["rules"]}
            args.out.write_text(json.dumps(result, indent=1))
            report_in_process(result)
            print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
            return
        bodies = S.score_bodies(export, ids, as_of)
        ml_bodies = S.mlflow_bodies(export, ids, as_of, model.spec)
        key = secrets.token_urlsafe(24)
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        env = S.server_env(work, key)
        print(f"{len(ids)} leads with {acts[0]}–{acts[-1]} activities (median {statistics.median(acts):.0f}) at {as_of}; "
              f"workers: {workers} for both (BentoML traffic {config['traffic']})", flush=True)

        ours = S.bentoml_server(work, env)
        mlflow = S.mlflow_server(work, env, workers)
        try:
            ours.start()
            mlflow.start()
            ready = {"ours_s": ours.wait_ready(), "mlflow_s": mlflow.wait_ready()}
            print(f"servers ready: ours {ours.base} ({ready['ours_s']:.1f} s), MLflow {mlflow.base}", flush=True)
            checks = check_answers(ours, mlflow, bodies, ml_bodies, ids, headers)
            if checks["problems"]:
                raise SystemExit("the servers did not answer as expected:\n  " + "\n  ".join(checks["problems"][:10]))
            print("latency …", flush=True)
            lat = latency(ours, mlflow, bodies, ml_bodies, headers, args.requests, args.warmup_requests)
            lat["target_p99_ms"] = LATENCY_TARGET_MS
            lat["target_met"] = lat["ours"]["p99_ms"] is not None and lat["ours"]["p99_ms"] <= LATENCY_TARGET_MS
            both = in_process(model, rules, export, ids, as_of, args.in_process_requests)
            print("throughput …", flush=True)
            thr = throughput(ours, mlflow, bodies, ml_bodies, headers, args)
            processes = {"ours": ours.worker_count(), "mlflow": mlflow.worker_count()}
        finally:
            S.stop_all()

    result = {
        "machine": S.machine(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "model": {"version": work["version"], "trees": work["trees"], "demo_leads": args.leads, "seed": args.seed},
        "workers": workers, "service_traffic": config["traffic"], "server_processes": processes,
        "payload": {**payload, "ours_body_bytes": statistics.median(len(b) for b in bodies),
                    "mlflow_body_bytes": statistics.median(len(b) for b in ml_bodies)},
        "ready_s": ready, "checks": checks, "latency": lat, "in_process": both["model"],
        "in_process_rules": both["rules"], "throughput": thr,
        "mlflow_note": MLFLOW_NOTE,
    }
    args.out.write_text(json.dumps(result, indent=1))
    report(result)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
