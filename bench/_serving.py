"""Shared by the serving benchmarks: a private registry with a champion, real servers, payloads, CPU.

Nothing here is imported by the service. ``bench/serve_speed.py`` and ``bench/serve_load.py`` use it:

- ``champion(workdir)``: a demo export and a trained, registered, promoted model in a private
  MLflow store under ``workdir`` (built in a child process, as the tests' ``trained`` fixture
  does; reused when ``workdir`` already holds one for the same export size and seed).
- ``Server``: ``bentoml serve`` or ``mlflow models serve`` in its own process group, waited for
  until ready and always stopped (the whole group) on exit, failure, Ctrl-C or SIGTERM.
- ``single_lead_leads`` / ``score_bodies`` / ``mlflow_bodies``: one request per lead, the same
  leads for both servers — ours as the API's JSON, MLflow's as the ``dataframe_split`` of the
  lead's raw features computed once here with the batch path (``compute_features``).

    .venv/bin/python bench/_serving.py champion --workdir /tmp/lsbench   # build a registry once
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: bentoml, mlflow, locust
MODEL_URI = "models:/lead-scoring@champion"
QUIET_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "BENTOML_DO_NOT_TRACK": "True"}
BUSY_CORES = 0.2  # other processes using more than this many cores on average: the phase is flagged


# ---------------------------------------------------------------- numbers


def pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank (as the other benches)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else math.nan


def ms(values: list[float]) -> dict:
    """Median, p99 and max of durations in seconds, in milliseconds."""
    import statistics

    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"n": len(values), "p50_ms": statistics.median(values) * 1e3, "p99_ms": pct(values, 0.99) * 1e3,
            "max_ms": max(values) * 1e3}


def machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# ---------------------------------------------------------------- CPU accounting


def _machine_cpu_s() -> float:
    """CPU seconds used by the whole machine (all but idle and iowait; 0 without /proc/stat)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _self_cpu_s() -> float:
    """This process and its finished children (a locust run is a child of the driver)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class CpuMeter:
    """CPU seconds of the servers' process trees, of the client (this process and its finished
    children), and of everything else on the machine (a busy phase is flagged)."""

    def __init__(self, *servers: "Server"):
        self.servers = servers

    def _now(self) -> tuple[float, float, float]:
        return sum(s.cpu_s() for s in self.servers), _self_cpu_s(), _machine_cpu_s()

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.start = self._now()
        return self

    def __exit__(self, *exc):
        server, client, whole = (b - a for a, b in zip(self.start, self._now()))
        self.wall_s = time.perf_counter() - self.t0
        other = max(0.0, whole - server - client) if whole else None
        self.result = {"wall_s": self.wall_s, "server_cpu_s": server, "client_cpu_s": client,
                       "other_processes_cpu_s": other,
                       "busy": bool(other is not None and other > BUSY_CORES * self.wall_s)}
        return False


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(RuntimeError):
    pass


class Server:
    """A server process in its own process group; ``stop`` ends its whole process tree."""

    def __init__(self, name: str, cmd: list[str], env: dict, cwd: Path, log: Path, ready: str, base: str):
        self.name, self.cmd, self.env, self.cwd, self.log_path, self.ready_url, self.base = name, cmd, env, cwd, log, ready, base
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        _RUNNING.append(self)
        return self

    def wait_ready(self, timeout: float = 180) -> float:
        """Poll the readiness URL; raise with the end of the server's log if it dies or times out."""
        import httpx

        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    self.known = self.processes()  # to stop workers even if their parent is gone by then
                    return time.monotonic() - t0
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > timeout:
                raise ServerFailed(f"{self.name} not ready after {timeout:.0f} s ({self.ready_url}):\n{self.tail()}")
            time.sleep(0.25)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def processes(self) -> list:
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the server's live process tree."""
        import psutil

        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def worker_count(self) -> int:
        return len(self.processes())

    def stop(self) -> None:
        """SIGTERM to the server's process group, then SIGKILL to whatever of its process tree is
        left (BentoML's workers run in process groups of their own)."""
        import psutil

        if self.proc is None:
            return self._close()
        tree = {p.pid: p for p in [*getattr(self, "known", []), *self.processes()] if p.is_running()}.values()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        _, alive = psutil.wait_procs(tree, timeout=20)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._close()

    def _close(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


_RUNNING: list[Server] = []


def stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


def on_signals() -> None:
    """SIGTERM and SIGHUP end the bench like Ctrl-C does, so ``finally`` blocks stop the servers."""

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)
    import atexit

    atexit.register(stop_all)


def server_env(work: dict, api_key: str) -> dict:
    """The environment both servers get: the private registry, keys, and quiet threads. The score
    ledger starts empty on every run, so that a reused ``--workdir`` does not make runs differ."""
    tmp = Path(work["workdir"])
    for old in tmp.glob("ledger.db*"):
        old.unlink()
    env = {**os.environ, **QUIET_ENV,
           "MLFLOW_TRACKING_URI": work["tracking_uri"],
           "LEADSCORE_CACHE_DIR": str(tmp / "cache"),
           "LEADSCORE_PARAMS_PATH": str(ROOT / "params.yaml"),
           "LEADSCORE_API_KEYS": api_key,
           "LEADSCORE_PSEUDONYM_KEY": secrets.token_hex(32),
           "LEADSCORE_LEDGER_URL": f"sqlite:///{tmp / 'ledger.db'}",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("LEADSCORE_TRACKING_URI", None)
    return env


def bentoml_server(work: dict, env: dict, port: int | None = None) -> Server:
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "bentoml"), "serve", "leadscore.serving.service:LeadScoring", "--host", "127.0.0.1", "--port", str(port),
           "--working-dir", str(ROOT)]
    return Server("leadscore (bentoml serve)", cmd, env, ROOT, Path(work["workdir"]) / "bentoml.log",
                  f"{base}/readyz", base)


def mlflow_server(work: dict, env: dict, workers: int, port: int | None = None) -> Server:
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    # Run from the registry folder: MLflow resolves the model through MLFLOW_TRACKING_URI.
    return Server("mlflow models serve", cmd, env, Path(work["workdir"]), Path(work["workdir"]) / "mlflow.log",
                  f"{base}/ping", base)


def service_config() -> dict:
    """Workers and traffic settings of our BentoML service, as `bentoml serve` will read them."""
    sys.path.insert(0, str(ROOT))
    from leadscore.serving.service import LeadScoring

    config = dict(getattr(LeadScoring, "config", {}) or {})
    workers = config.get("workers", 1)
    if workers == "cpu_count":
        workers = os.cpu_count() or 1
    if not isinstance(workers, int):  # a list of worker settings (GPU pinning): one process each
        workers = len(workers) if isinstance(workers, list) else 1
    return {"workers": workers, "traffic": config.get("traffic", {})}


# ---------------------------------------------------------------- the private registry


def champion(workdir: Path, leads: int, seed: int) -> dict:
    """A trained champion in a private MLflow store under ``workdir``, reused when it exists."""
    workdir = Path(workdir).resolve()
    marker = workdir / "champion.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("leads") == leads and info.get("seed") == seed:
            info["reused"] = True
            return info
        raise SystemExit(f"{workdir} holds a registry for {info.get('leads')} leads (seed {info.get('seed')}), "
                         f"not {leads} (seed {seed}); use another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "champion", "--workdir", str(workdir),
           "--leads", str(leads), "--seed", str(seed)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, env={**os.environ, **QUIET_ENV}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the benchmark registry failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    info = json.loads(marker.read_text())
    info["reused"] = False
    info["build_s"] = time.perf_counter() - t0
    return info


def _build_champion(workdir: Path, leads: int, seed: int) -> None:
    """Child process: demo export → build → train → evaluate → register → promote (as tests/conftest.py)."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ.update({"MLFLOW_TRACKING_URI": tracking_uri, "LEADSCORE_CACHE_DIR": str(workdir / "cache"),
                       "LEADSCORE_PARAMS_PATH": str(ROOT / "params.yaml")})
    os.chdir(workdir)  # MLflow puts run artifacts beside the working directory
    sys.path.insert(0, str(ROOT))
    from leadscore.config.params import load_params
    from leadscore.demo import write_demo_export
    from leadscore.training.dataset import build_dataset
    from leadscore.training.evaluate import evaluate
    from leadscore.training.promote import promote
    from leadscore.training.register import register_model
    from leadscore.training.train import train_model

    params = load_params(ROOT / "params.yaml")
    # The served model does not depend on the backtest; one fold without resamples keeps this quick.
    quick_eval = params.model_copy(update={"backtest": params.backtest.model_copy(update={"folds": 1, "bootstrap": 0})})
    export = workdir / "export"
    write_demo_export(export, n_leads=leads, seed=seed)
    build_dataset(export, params, workdir / "dataset")
    model = train_model(workdir / "dataset", params, workdir / "model")
    metrics = evaluate(workdir / "dataset", workdir / "model", export, quick_eval)
    registered = register_model(workdir / "model", workdir / "dataset", metrics, params)
    promotion = promote(workdir / "dataset", params)
    if not promotion["promoted"]:
        raise SystemExit(f"the benchmark model was not promoted: {promotion['reasons']}")
    info = {"workdir": str(workdir), "tracking_uri": tracking_uri, "export": str(export),
            "model_dir": str(workdir / "model"), "version": registered["version"], "leads": leads, "seed": seed,
            "trees": model.info.get("trees")}
    (workdir / "champion.json").write_text(json.dumps(info, indent=1))


# ---------------------------------------------------------------- payloads


def single_lead_leads(export, as_of, n: int, target: int = 50) -> tuple[list[str], dict[str, int]]:
    """The ``n`` open leads at ``as_of`` whose activity count before ``as_of`` is nearest ``target``."""
    from leadscore.features.snapshots import scoring_snapshots

    open_ids = scoring_snapshots(export, as_of)["lead_id"]
    before = export.activities[export.activities["occurred_at"] < as_of]
    counts = before.groupby("lead_id").size().reindex(open_ids).fillna(0).astype(int)
    order = (counts - target).abs().sort_values(kind="stable")
    ids = order.index[:n].tolist()
    return ids, {i: int(counts[i]) for i in ids}


def _records(frame) -> list[dict]:
    import pandas as pd

    return [{k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items() if pd.notna(v)}
            for row in frame.to_dict("records")]


def score_bodies(export, ids: list[str], as_of, top_k: int = 3) -> list[bytes]:
    """One ``POST /score`` body per lead: its profile and its activity log before ``as_of``."""
    leads = export.leads.set_index("lead_id")
    acts = export.activities[export.activities["occurred_at"] < as_of]
    by_lead = dict(tuple(acts.groupby("lead_id")))
    bodies = []
    for lead_id in ids:
        lead = _records(leads.loc[[lead_id]].reset_index())[0]
        history = by_lead.get(lead_id, acts.iloc[:0]).drop(columns="lead_id").sort_values("occurred_at")
        body = {"leads": [{"lead": lead, "activities": _records(history)}], "as_of": as_of.isoformat(),
                "top_k": top_k, "language": "en"}
        bodies.append(json.dumps(body).encode())
    return bodies


def mlflow_bodies(export, ids: list[str], as_of, spec) -> list[bytes]:
    """One ``POST /invocations`` body per lead: the ``dataframe_split`` of its raw features (the
    registered pyfunc's signature), computed here once with the batch path."""
    import pandas as pd

    from leadscore.features.build import compute_features

    snaps = pd.DataFrame({"lead_id": ids, "as_of": [as_of] * len(ids)})
    snaps["as_of"] = snaps["as_of"].astype("datetime64[ns]")
    raw = compute_features(snaps, export.leads, export.activities, spec)
    columns = list(spec.names)
    bodies = []
    for row in raw[columns].itertuples(index=False):
        data = [None if (v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA) else
                (v.item() if hasattr(v, "item") else v) for v in row]
        bodies.append(json.dumps({"dataframe_split": {"columns": columns, "data": [data]}}).encode())
    return bodies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("champion", help="build the private registry (what serve_speed/serve_load do first)")
    c.add_argument("--workdir", type=Path, required=True)
    c.add_argument("--leads", type=int, default=5000)
    c.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.environ.update(QUIET_ENV)
    if (args.workdir / "champion.json").exists():
        print(json.dumps(champion(args.workdir, args.leads, args.seed), indent=1))
        return
    _build_champion(args.workdir, args.leads, args.seed)


if __name__ == "__main__":
    main()


def add_registry_args(ap) -> None:
    """The options both serving benches share: where the champion lives and which leads are sent."""
    ap.add_argument("--workdir", type=Path, help="registry folder to build once and reuse (default: a temporary one)")
    ap.add_argument("--leads", type=int, default=5000, help="leads in the demo export the champion is trained on")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--payload-leads", type=int, default=100, help="distinct leads sent, those nearest --activities")
    ap.add_argument("--activities", type=int, default=50, help="activities per lead to aim for")
