"""The batch aggregation of activities, written once with Ibis: DuckDB in process, or Apache Spark.

Same definitions as ``features.build.interest_numpy`` (the live path); a test asserts the
numbers are identical. Ages are whole microseconds, so no engine rounds differently.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from features.build import DAY_US, FeatureSpec


@cache
def connect(backend: str):
    """One connection per backend and process (a Spark session is expensive to start)."""
    import ibis

    if backend == "duckdb":
        return ibis.duckdb.connect()
    if backend == "pyspark":
        import tempfile

        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master("local[2]")
            .appName("leadscore-features")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="leadscore-spark-"))
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        return ibis.pyspark.connect(session)
    raise ValueError(f"unknown backend {backend!r}")


def interest_expr(snapshots, activities, spec: FeatureSpec):
    """The Ibis expression: one row per snapshot id with every interest aggregate."""
    import ibis

    joined = snapshots.join(activities, snapshots.lead_id == activities.lead_id)
    joined = joined.filter(joined.occurred_us < joined.as_of_us)
    age = joined.as_of_us - joined.occurred_us
    kind = joined.activity_type

    def count(condition):
        return ibis.ifelse(condition, 1, 0).sum()

    aggs = {}
    for w in spec.windows_days:
        in_window = age <= w * DAY_US
        for t in spec.activity_types:
            aggs[f"{t}_{w}d"] = count(in_window & (kind == t))
        aggs[f"activities_{w}d"] = count(in_window)
    longest = max(spec.windows_days)
    aggs[f"hand_raisers_{longest}d"] = count((age <= longest * DAY_US) & kind.isin(spec.hand_raiser_types))
    aggs["last_age_us"] = age.min()
    aggs["first_age_us"] = age.max()
    aggs["unsubscribes"] = count(kind == "unsubscribe")
    return joined.group_by(joined.sid).aggregate(**aggs)


def interest_ibis(
    lead_ids: np.ndarray, as_of_us: np.ndarray, acts: pd.DataFrame, spec: FeatureSpec, backend: str = "duckdb"
) -> dict[str, np.ndarray]:
    """Interest features for (lead_id, as_of) rows, aggregated by ``backend`` through Ibis."""
    import ibis

    con = connect(backend)
    n = len(lead_ids)
    snaps = pd.DataFrame({"sid": np.arange(n, dtype="int64"), "lead_id": lead_ids.astype(str), "as_of_us": as_of_us})
    acts = acts.astype({"lead_id": str, "activity_type": str, "occurred_us": "int64"})
    if backend == "pyspark":
        s_tab, a_tab = con.create_table("ls_snapshots", snaps, overwrite=True), con.create_table("ls_activities", acts, overwrite=True)
    else:
        s_tab, a_tab = ibis.memtable(snaps), ibis.memtable(acts)
    result = con.execute(interest_expr(s_tab, a_tab, spec))
    result = result.set_index("sid").reindex(np.arange(n))
    out: dict[str, np.ndarray] = {}
    for w in spec.windows_days:
        for t in spec.activity_types:
            out[f"{t}_{w}d"] = result[f"{t}_{w}d"].fillna(0).to_numpy(dtype="float64")
        out[f"activities_{w}d"] = result[f"activities_{w}d"].fillna(0).to_numpy(dtype="float64")
    longest = max(spec.windows_days)
    out[f"hand_raisers_{longest}d"] = result[f"hand_raisers_{longest}d"].fillna(0).to_numpy(dtype="float64")
    out["days_since_last_activity"] = result["last_age_us"].to_numpy(dtype="float64", na_value=np.nan) / DAY_US
    out["days_since_first_activity"] = result["first_age_us"].to_numpy(dtype="float64", na_value=np.nan) / DAY_US
    out["has_unsubscribed"] = (result["unsubscribes"].fillna(0).to_numpy(dtype="float64") > 0).astype("float64")
    return out
