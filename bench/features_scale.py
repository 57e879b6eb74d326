"""Feature pipeline at scale: Ibis on DuckDB vs the in-process pandas/numpy path, side by side.

    .venv/bin/python bench/features_scale.py [--leads 100000] [--acts-per-lead 100] [--snaps-per-lead 10]

Synthetic export (random times, 14 activity types incl. sales types, 5 channels) — the point is volume.
Each engine runs in its own process so its peak memory (max RSS) is its own. Prints a table and
writes bench/features_scale.json; bench/run.py copies the rows into the README table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TYPES = ["email_open", "email_click", "page_view", "pricing_page_view", "whitepaper_download", "webinar_attendance",
         "demo_request", "contact_form", "trial_signup", "unsubscribe", "email_bounce", "sales_call", "meeting", "proposal_sent"]
CHANNELS = ["email", "email", "web", "web", "web", "event", "web", "web", "web", "email", "email", "phone", "event", "email"]
WEIGHTS = [30, 15, 25, 5, 4, 2, 1, 1, 1, 0.5, 0.5, 3, 1, 0.5]


def make(folder: Path, leads: int, acts_per_lead: int, snaps_per_lead: int, seed: int = 0) -> dict:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype("int64")
    span = 730 * 86_400_000_000
    created = start + rng.integers(0, span // 2, leads)
    lead_ids = np.array([f"L{i:07d}" for i in range(leads)], dtype=object)
    n_acts = rng.poisson(acts_per_lead, leads)
    owner = np.repeat(np.arange(leads), n_acts)
    occurred = created[owner] + rng.integers(0, span // 2, len(owner))
    p = np.array(WEIGHTS) / sum(WEIGHTS)
    kind = rng.choice(len(TYPES), len(owner), p=p)
    channel = np.array(CHANNELS, dtype=object)[kind]
    channel[rng.random(len(owner)) < 0.1] = "social"
    acts = pd.DataFrame({
        "lead_id": lead_ids[owner],
        "occurred_at": occurred.astype("datetime64[us]").astype("datetime64[ns]"),
        "activity_type": np.array(TYPES, dtype=object)[kind],
        "channel": pd.Series(channel, dtype="str"),
    })
    snap_owner = np.repeat(np.arange(leads), snaps_per_lead)
    snaps = pd.DataFrame({
        "lead_id": lead_ids[snap_owner],
        "as_of": (created[snap_owner] + np.tile(np.arange(1, snaps_per_lead + 1), leads) * 7 * 86_400_000_000)
        .astype("datetime64[us]").astype("datetime64[ns]"),
    })
    leads_df = pd.DataFrame({"lead_id": lead_ids, "created_at": created.astype("datetime64[us]").astype("datetime64[ns]"),
                             "employees": rng.integers(1, 5000, leads).astype(float),
                             "country": rng.choice(["DE", "AT", "FR", "US"], leads)})
    folder.mkdir(parents=True, exist_ok=True)
    leads_df.to_parquet(folder / "leads.parquet")
    acts.to_parquet(folder / "activities.parquet")
    snaps.to_parquet(folder / "snapshots.parquet")
    return {"leads": leads, "activities": len(acts), "snapshots": len(snaps)}


def worker(folder: Path, engine: str) -> None:
    import pandas as pd

    from leadscore.config.params import load_params
    from leadscore.features.build import compute_features, infer_spec

    leads = pd.read_parquet(folder / "leads.parquet")
    acts = pd.read_parquet(folder / "activities.parquet")
    snaps = pd.read_parquet(folder / "snapshots.parquet")
    spec = infer_spec(leads, acts, load_params(ROOT / "params.yaml").features)
    t0 = time.perf_counter()
    frame = compute_features(snaps, leads, acts, spec, engine=engine)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "seconds": seconds, "peak_mb": peak_mb, "rows": len(frame),
                      "checksum": float(frame.select_dtypes("number").sum().sum())}))


def run(folder: Path, engine: str, timeout: int) -> dict:
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", str(folder), "--engine", engine],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "error": f"did not finish in {timeout} s"}
    if out.returncode != 0:
        return {"engine": engine, "error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--acts-per-lead", type=int, default=100)
    ap.add_argument("--snaps-per-lead", type=int, default=10)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--worker")
    ap.add_argument("--engine")
    args = ap.parse_args()
    if args.worker:
        worker(Path(args.worker), args.engine)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (0.25, 1.0):
            leads = int(args.leads * scale)
            sizes = make(Path(tmp) / str(scale), leads, args.acts_per_lead, args.snaps_per_lead)
            print(f"{sizes['activities']:,} activities, {sizes['snapshots']:,} snapshots", flush=True)
            for engine in ("duckdb", "numpy"):
                r = run(Path(tmp) / str(scale), engine, args.timeout)
                r.update(sizes)
                results.append(r)
                print("  ", r, flush=True)
    (ROOT / "bench" / "features_scale.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
