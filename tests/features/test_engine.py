"""One definition, three engines: numpy (live), Ibis on DuckDB (batch), Ibis on Spark — identical numbers."""

import shutil

import pandas as pd
import pytest

from leadscore.features.build import compute_features, infer_spec
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots, training_snapshots


@pytest.fixture(scope="module")
def demo(demo_dir, params):
    export = read_export(demo_dir)
    snaps, _ = training_snapshots(export, params.features)
    spec = infer_spec(export.leads, export.activities, params.features)
    return export, snaps, spec


def test_duckdb_equals_numpy_on_every_training_snapshot(demo):
    export, snaps, spec = demo
    numpy_path = compute_features(snaps, export.leads, export.activities, spec, engine="numpy")
    duckdb_path = compute_features(snaps, export.leads, export.activities, spec, engine="duckdb")
    assert len(snaps) > 20_000 and numpy_path["activities_90d"].sum() > 0
    pd.testing.assert_frame_equal(numpy_path, duckdb_path, check_exact=True)


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime (CI has one)")
def test_spark_equals_duckdb(demo):
    export, snaps, spec = demo
    sample = snaps[snaps["lead_id"].isin(snaps["lead_id"].drop_duplicates().sample(600, random_state=2))]
    spark_path = compute_features(sample, export.leads, export.activities, spec, engine="pyspark")
    duckdb_path = compute_features(sample, export.leads, export.activities, spec, engine="duckdb")
    assert len(sample) > 5_000
    pd.testing.assert_frame_equal(spark_path, duckdb_path, check_exact=True)


def test_online_one_lead_at_a_time_equals_batch_for_1000_leads(demo):
    """The live path (one request, numpy) and the batch path (DuckDB) agree exactly."""
    export, _, spec = demo
    as_of = export.data_end - pd.Timedelta(days=20)
    snaps = scoring_snapshots(export, as_of).head(1000)
    assert len(snaps) == 1000
    batch = compute_features(snaps, export.leads, export.activities, spec, engine="duckdb")
    leads = dict(tuple(export.leads.groupby("lead_id")))
    acts = dict(tuple(export.activities.groupby("lead_id")))
    online = pd.concat([
        compute_features(snaps.iloc[[i]], leads[lead_id], acts.get(lead_id, export.activities.iloc[:0]), spec)
        for i, lead_id in enumerate(snaps["lead_id"])
    ])
    pd.testing.assert_frame_equal(online, batch, check_exact=True)


def test_unknown_engine_is_a_clear_error(demo):
    export, snaps, spec = demo
    with pytest.raises(ValueError, match="features.engine: expected one of numpy, duckdb, pyspark, found 'polars'"):
        compute_features(snaps.head(3), export.leads, export.activities, spec, engine="polars")


def test_decayed_counts_asked_for_agree_across_engines(demo):
    """Counts of one type in a window, each halved every N days (what the SLA rules may ask for)."""
    import dataclasses

    from leadscore.features.spec import decayed_name, layout

    export, snaps, spec = demo
    asked = dataclasses.replace(spec, decayed_counts=[["pricing_page_view", 30, 14], ["demo_request", 90, 30],
                                                      ["page_view", 30, 7.5]])
    asked.features = layout(asked)
    sample = snaps.head(3000)
    numpy_path = compute_features(sample, export.leads, export.activities, asked, engine="numpy")
    duckdb_path = compute_features(sample, export.leads, export.activities, asked, engine="duckdb")
    pd.testing.assert_frame_equal(numpy_path, duckdb_path, check_exact=True)
    name = decayed_name("pricing_page_view", 30, 14)
    assert name == "pricing_page_view_30d_hl14"
    # never more than the plain count, and less once the visits have aged
    assert (numpy_path[name] <= numpy_path["pricing_page_view_30d"]).all()
    assert (numpy_path[name] < numpy_path["pricing_page_view_30d"]).any() and numpy_path[name].max() > 0
