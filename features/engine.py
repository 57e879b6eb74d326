"""The batch aggregation of activities, written once with Ibis: DuckDB in process, or Apache Spark.

Same definitions as ``features.build.interest_numpy`` (the live path); a test asserts the
numbers are identical. Ages are whole microseconds, so no engine rounds differently.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from leadscore.features.spec import (
    DAY_US,
    SALES_PREFIX,
    FeatureSpec,
    decay_pairs,
    decay_table,
    decayed_counts_from,
    distinct_per_row,
    engagement_from,
    micros,
)


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


def interest_exprs(snapshots, activities, spec: FeatureSpec):
    """Ibis expressions over ``snapshots(sid, lead, as_of_us)`` and ``activities(lead, occurred_us,
    kind, code)``, where ``kind`` is the index in ``spec.activity_types`` (-1 for other types) and
    ``code`` combines kind and channel (see ``interest_ibis``). Returns: window counts and summed
    decay weights per (sid, code), and per sid the latest activity before as_of and the
    first-activity/unsubscribe/bounce ages.
    """
    import ibis

    longest = spec.longest_window
    # Counts only need activities of the longest window: join just those (a range join per lead).
    a = activities
    j = snapshots.join(
        a, [snapshots.lead == a.lead, a.occurred_us < snapshots.as_of_us, a.occurred_us >= snapshots.as_of_us - longest * DAY_US]
    )
    j = j.mutate(age=j.as_of_us - j.occurred_us)
    # The decay weight of a whole day of age, from one integer table (no engine evaluates pow).
    table = ibis.literal([int(w) for w in decay_table(spec)], type="array<int64>")
    day = (j.age // DAY_US).cast("int32")
    j = j.mutate(weight=table[day])
    # Decayed counts a consumer asked for (the SLA rules): one integer table per half-life.
    pairs = decay_pairs(spec)
    half_lives = sorted({h for _, h in pairs})
    j = j.mutate(**{f"weight_{k}": ibis.literal([int(w) for w in decay_table(spec, h)], type="array<int64>")[day]
                    for k, h in enumerate(half_lives)})
    decays = {f"d{w}_{half_lives.index(h)}": j[f"weight_{half_lives.index(h)}"].sum(where=j.age <= w * DAY_US)
              for w, h in pairs}
    # Long format (one row per snapshot, kind and channel, one sum per window) is ~3× faster than
    # one CASE column per type and window; the pivot happens in numpy.
    counts = j.group_by([j.sid, j.code]).aggregate(
        decayed=j.weight.sum(),
        **decays,
        # every joined row is inside the longest window: its count needs no condition
        **{f"w{w}": j.sid.count(where=j.age <= w * DAY_US) if w < longest else j.sid.count() for w in spec.windows_days},
    )

    # The latest activity strictly before as_of, at any distance: one time-ordered stream per lead
    # in which a snapshot sorts before an activity at the same instant, and a running maximum.
    acts_stream = a.select(lead=a.lead, t=a.occurred_us, tie=ibis.literal(1), sid=ibis.null("int64"), seen=a.occurred_us)
    snap_stream = snapshots.select(
        lead=snapshots.lead, t=snapshots.as_of_us, tie=ibis.literal(0), sid=snapshots.sid, seen=ibis.null("int64")
    )
    stream = acts_stream.union(snap_stream)
    window = ibis.cumulative_window(group_by=stream.lead, order_by=[stream.t, stream.tie])
    stream = stream.mutate(latest=stream.seen.max().over(window))
    latest = stream.filter(stream.sid.notnull()).select(sid=stream.sid, last_age_us=stream.t - stream.latest)

    # First activity and first unsubscribe are per-lead facts; a snapshot sees them once they are past.
    def first(activity_type: str):
        code = spec.activity_types.index(activity_type) if activity_type in spec.activity_types else -2
        return ibis.ifelse(a.kind == code, a.occurred_us, ibis.null("int64")).min()

    per_lead = a.group_by(a.lead).aggregate(
        first_us=a.occurred_us.min(), unsub_us=first("unsubscribe"), bounce_us=first("email_bounce")
    )
    s = snapshots.left_join(per_lead, snapshots.lead == per_lead.lead)
    history = s.select(
        sid=s.sid,
        first_age_us=ibis.ifelse(s.first_us < s.as_of_us, s.as_of_us - s.first_us, ibis.null("int64")),
        unsubscribed=ibis.ifelse(s.unsub_us < s.as_of_us, 1, 0),
        bounced=ibis.ifelse(s.bounce_us < s.as_of_us, 1, 0),
    )
    return counts, latest, history


def interest_ibis(
    lead_ids: np.ndarray, as_of_us: np.ndarray, activities: pd.DataFrame, spec: FeatureSpec, backend: str = "duckdb"
) -> dict[str, np.ndarray]:
    """Interest features for (lead_id, as_of) rows, aggregated by ``backend`` through Ibis.

    ``activities`` is the export's table as it is (``lead_id, occurred_at, activity_type``): the
    engine drops sales types and codes activity types itself, so 10M strings never become Python
    objects (pandas' Arrow strings reach DuckDB without a copy).
    """
    import ibis

    con = connect(backend)
    n = len(lead_ids)
    snaps = pd.DataFrame({"sid": np.arange(n, dtype="int64"), "lead_id": pd.Series(lead_ids, dtype="str"),
                          "as_of_us": as_of_us})
    # Series, not numpy: pandas' Arrow strings reach DuckDB as they are; .to_numpy() would make
    # 10M Python string objects (seconds of work).
    def text(column: str) -> pd.Series:
        if column not in activities.columns:
            return pd.Series(None, index=range(len(activities)), dtype="str")
        return activities[column].astype("str").reset_index(drop=True)

    acts = pd.DataFrame({
        "lead_id": text("lead_id"),
        "occurred_us": micros(activities["occurred_at"]),
        "activity_type": text("activity_type"),
        "channel": text("channel") if spec.channels else text("no channel"),
    })
    vocab = pd.DataFrame({"type_name": pd.Series(spec.activity_types, dtype="str"),
                          "kind": np.arange(len(spec.activity_types), dtype="int64")})
    channels = pd.DataFrame({"channel_name": pd.Series(spec.channels, dtype="str"),
                             "chan": np.arange(len(spec.channels), dtype="int64")})
    if backend == "pyspark":
        s_tab = con.create_table("ls_snapshots", snaps, overwrite=True)
        a_raw = con.create_table("ls_activities", acts, overwrite=True)
        v_tab = con.create_table("ls_vocab", vocab, overwrite=True)
        c_tab = con.create_table("ls_channels", channels, overwrite=True)
    else:
        s_tab, a_raw, v_tab, c_tab = (ibis.memtable(t) for t in (snaps, acts, vocab, channels))
    sales = a_raw.activity_type.startswith(SALES_PREFIX)  # features.spec.is_sales_type, in SQL
    if spec.sales_activity_types:
        sales = sales | a_raw.activity_type.isin(spec.sales_activity_types)
    a_raw = a_raw.filter(~sales)
    coded = a_raw.left_join(v_tab, a_raw.activity_type == v_tab.type_name)
    coded = coded.left_join(c_tab, coded.channel == c_tab.channel_name)
    # One integer key for (kind, channel): grouping on it is faster than on two columns.
    width = len(spec.channels) + 1
    a_tab = coded.select(lead=coded.lead_id, occurred_us=coded.occurred_us, kind=coded.kind.fill_null(-1),
                         code=(coded.kind.fill_null(-1) + 1) * width + coded.chan.fill_null(-1) + 1)
    s_tab = s_tab.select(sid=s_tab.sid, lead=s_tab.lead_id, as_of_us=s_tab.as_of_us)
    counts_expr, latest_expr, history_expr = interest_exprs(s_tab, a_tab, spec)
    counts = con.execute(counts_expr)
    latest, history = (con.execute(e).set_index("sid").reindex(np.arange(n)) for e in (latest_expr, history_expr))
    sid, code = counts["sid"].to_numpy(dtype="int64"), counts["code"].to_numpy(dtype="int64")
    kind, chan = code // width - 1, code % width - 1
    n_types = max(len(spec.activity_types), 1)
    known = kind >= 0
    out: dict[str, np.ndarray] = {}
    for w in spec.windows_days:
        c = counts[f"w{w}"].to_numpy(dtype="float64")
        matrix = np.bincount(sid[known] * n_types + kind[known], weights=c[known], minlength=n * n_types)
        matrix = matrix.reshape(n, n_types)
        for k, t in enumerate(spec.activity_types):
            out[f"{t}_{w}d"] = matrix[:, k]
        out[f"activities_{w}d"] = np.bincount(sid, weights=c, minlength=n).astype("float64")
    longest = spec.longest_window
    hand = np.isin(kind, [spec.activity_types.index(t) for t in spec.counted_hand_raisers])
    out[f"hand_raisers_{longest}d"] = np.bincount(
        sid[hand], weights=counts[f"w{longest}"].to_numpy(dtype="float64")[hand], minlength=n
    ).astype("float64")
    decayed = np.bincount(sid[known] * n_types + kind[known], weights=counts["decayed"].to_numpy(dtype="float64")[known],
                          minlength=n * n_types)
    out["engagement"] = engagement_from(decayed.reshape(n, n_types), spec)
    half_lives = sorted({h for _, h in decay_pairs(spec)})
    sums = {}
    for w, h in decay_pairs(spec):
        values = counts[f"d{w}_{half_lives.index(h)}"].fillna(0).to_numpy(dtype="float64")
        sums[(w, h)] = np.bincount(sid[known] * n_types + kind[known], weights=values[known],
                                   minlength=n * n_types).reshape(n, n_types)
    out |= decayed_counts_from(sums, spec)
    out[f"channels_{longest}d"] = distinct_per_row(sid, chan, n)
    out["days_since_last_activity"] = latest["last_age_us"].to_numpy(dtype="float64", na_value=np.nan) / DAY_US
    out["days_since_first_activity"] = history["first_age_us"].to_numpy(dtype="float64", na_value=np.nan) / DAY_US
    out["has_unsubscribed"] = history["unsubscribed"].fillna(0).to_numpy(dtype="float64")
    out["has_bounced"] = history["bounced"].fillna(0).to_numpy(dtype="float64")
    return out
