"""One lead's features, as the live API needs them: the batch functions on a one-row table vs
``features.online`` (the same numbers, checked on every lead timed).

    .venv/bin/python bench/single_lead.py [--leads 5000] [--single 500]

Prints median and p99 per lead of (a) ``encode_matrix(compute_features(...))`` on the lead's rows,
(b) turning those rows into the online inputs, and (c) ``OnlineFeatures.features``; writes
``bench/single_lead.json``. Nothing here is a test.
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


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _ms(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values) * 1e3, "p99_ms": _p(values, 0.99) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=5000, help="leads in the demo export")
    ap.add_argument("--single", type=int, default=500, help="open leads to time, one at a time")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from leadscore.config.params import load_params
    from leadscore.demo import write_demo_export
    from leadscore.features.build import compute_features, encode_matrix, infer_spec, learn_categories
    from leadscore.features.contract import read_export
    from leadscore.features.online import OnlineFeatures, activity_lists, as_of_micros, profile_dicts
    from leadscore.features.snapshots import scoring_snapshots, training_snapshots

    params = load_params(ROOT / "params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_export(Path(tmp) / "export", n_leads=args.leads, seed=1)
        export = read_export(Path(tmp) / "export")
    # The spec as training fixes it: vocabulary from the export, category levels from leadscore.training rows.
    snaps, _ = training_snapshots(export, params.features)
    spec = infer_spec(export.leads, export.activities, params.features)
    spec = learn_categories(spec, compute_features(snaps, export.leads, export.activities, spec),
                            params.features.max_category_levels)

    as_of = export.data_end
    open_leads = scoring_snapshots(export, as_of)
    chosen = open_leads["lead_id"].sample(min(args.single + 50, len(open_leads)), random_state=0).tolist()
    warm_up, ids = chosen[:50], chosen[50:]
    leads = export.leads.set_index("lead_id", drop=False)
    acts = export.activities.set_index("lead_id", drop=False)
    no_acts = export.activities.iloc[:0]

    def tables(lead_id):
        one = pd.DataFrame({"lead_id": [lead_id], "as_of": [as_of]})
        one["as_of"] = one["as_of"].astype("datetime64[ns]")
        lead = leads.loc[[lead_id]].reset_index(drop=True)
        act = acts.loc[[lead_id]].reset_index(drop=True) if lead_id in acts.index else no_acts
        return one, lead, act

    online = OnlineFeatures(spec)
    t_batch, t_convert, t_online, n_acts, mismatched = [], [], [], [], []
    for lead_id in warm_up + ids:
        timed = lead_id not in warm_up
        one, lead, act = tables(lead_id)
        t0 = time.perf_counter()
        batch_row = encode_matrix(compute_features(one, lead, act, spec), spec)[0]
        t1 = time.perf_counter()
        profile = profile_dicts(lead)[lead_id]
        activities = activity_lists(act).get(lead_id, [])
        as_of_us = as_of_micros(as_of)
        t2 = time.perf_counter()
        _, online_row = online.features(profile, activities, as_of_us)
        t3 = time.perf_counter()
        if not timed:
            continue
        t_batch.append(t1 - t0)
        t_convert.append(t2 - t1)
        t_online.append(t3 - t2)
        n_acts.append(len(activities))
        if not np.array_equal(batch_row, online_row, equal_nan=True):
            mismatched.append(lead_id)

    around_50 = [t for t, n in zip(t_online, n_acts) if 40 <= n <= 60]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "export_leads": args.leads,
        "leads_timed": len(ids),
        "features": len(spec.features),
        "as_of": str(as_of),
        "activities_per_lead": {"median": statistics.median(n_acts), "p99": _p(n_acts, 0.99), "max": max(n_acts)},
        "batch_functions": _ms(t_batch),
        "conversion_to_online_inputs": _ms(t_convert),
        "online": _ms(t_online),
        "online_40_to_60_activities": {**_ms(around_50), "leads": len(around_50)} if around_50 else None,
        "ratio_batch_over_online": {
            "median": statistics.median(t_batch) / statistics.median(t_online),
            "p99": _p(t_batch, 0.99) / _p(t_online, 0.99),
        },
        "rows_equal": len(ids) - len(mismatched),
        "rows_different": mismatched,
    }
    (ROOT / "bench" / "single_lead.json").write_text(json.dumps(result, indent=1))
    print(f"{len(ids)} open leads at {as_of}, {len(spec.features)} features, "
          f"activities per lead median {result['activities_per_lead']['median']:.0f}, max {max(n_acts)}")
    for name, key in (("(a) compute_features + encode_matrix", "batch_functions"),
                      ("(b) rows → online inputs", "conversion_to_online_inputs"),
                      ("(c) OnlineFeatures.features", "online")):
        print(f"{name:40s} median {result[key]['median_ms']:7.3f} ms   p99 {result[key]['p99_ms']:7.3f} ms")
    if around_50:
        r = result["online_40_to_60_activities"]
        print(f"{'(c) with 40–60 activities':40s} median {r['median_ms']:7.3f} ms   p99 {r['p99_ms']:7.3f} ms"
              f"   ({r['leads']} leads)")
    ratio = result["ratio_batch_over_online"]
    print(f"(a)/(c): median {ratio['median']:.0f}×, p99 {ratio['p99']:.0f}×; rows equal {result['rows_equal']}/{len(ids)}")


if __name__ == "__main__":
    main()
