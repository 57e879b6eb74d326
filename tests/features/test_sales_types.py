"""A type sales logs but no list names never feeds a feature (issue 18's leakage gap).

A CRM export brings activity types no one listed in ``features.sales_activity_types``: a
Salesforce Task typed "Product Demo", a HubSpot engagement typed "WHATS_APP". Sales wrote them, so
they must be as invisible to every feature as ``sales_call`` is. The importer names such a value
``sales_…`` when its source is ``logged_by: sales``, and every path asks one rule
(``features.spec.is_sales_type``): the feature spec, the three engines, the live path, the SLA
report's moments and the attribution's touches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import compute_features, infer_spec
from leadscore.features.contract import read_export
from leadscore.features.importer import MappingError, import_export, load_mapping
from leadscore.features.online import OnlineFeatures, activity_lists, as_of_micros, profile_dicts
from leadscore.features.snapshots import training_snapshots
from leadscore.features.spec import is_sales_type, sales_rows
from leadscore.serving import live
from leadscore.training.attribution import _journeys
from leadscore.training.sla_report import evaluation_moments
from tests.features.test_importer import salesforce

NEW = "sales_product_demo"  # in no list: sales only by its name


@pytest.fixture(scope="module")
def demo(demo_dir, params):
    """The demo export, and the same with a ``sales_product_demo`` before every won lead's opportunity
    (a careless feature would rank the label with it)."""
    export = read_export(demo_dir)
    opps = export.opportunities.drop_duplicates("lead_id")
    won = opps.loc[opps["stage"] == "won"]
    extra = pd.DataFrame({"lead_id": won["lead_id"].to_numpy(), "occurred_at": won["created_at"] - pd.Timedelta(days=2),
                          "activity_type": NEW, "channel": "phone"})
    assert len(extra) > 50 and NEW not in params.features.sales_activity_types
    with_new = dataclasses.replace(export, activities=pd.concat([export.activities, extra], ignore_index=True))
    return export, with_new


def test_the_rule():
    listed = {"meeting"}
    assert is_sales_type("meeting", listed) and is_sales_type(NEW, listed) and is_sales_type("sales_x", ())
    assert not is_sales_type("webinar_attendance", listed) and not is_sales_type("presales", listed)
    types = pd.Series(["meeting", NEW, "page_view", None, "x_sales_y"], dtype=object)
    assert sales_rows(types, listed).tolist() == [True, True, False, False, False]


def test_no_feature_and_no_feature_value_comes_from_an_unlisted_sales_type(demo, params):
    export, with_new = demo
    spec = infer_spec(with_new.leads, with_new.activities, params.features)
    assert NEW not in spec.activity_types and not any(NEW in name for name in spec.names)
    assert spec == infer_spec(export.leads, export.activities, params.features)
    snaps, _ = training_snapshots(export, params.features)
    snaps = snaps[snaps["lead_id"].isin(with_new.activities.loc[with_new.activities["activity_type"] == NEW, "lead_id"])]
    assert len(snaps) > 100
    base = compute_features(snaps, export.leads, export.activities, spec, engine="duckdb")
    for engine in ("numpy", "duckdb"):
        got = compute_features(snaps, with_new.leads, with_new.activities, spec, engine=engine)
        pd.testing.assert_frame_equal(got, base, check_exact=True)
    # the live path: one lead, its activities with and without the sales row
    online = OnlineFeatures(spec)
    lead_id = snaps["lead_id"].iloc[0]
    profile = profile_dicts(export.leads)[lead_id]
    as_of = as_of_micros(snaps["as_of"].max())
    before = activity_lists(export.activities).get(lead_id, [])
    after = activity_lists(with_new.activities)[lead_id]
    assert len(after) == len(before) + 1
    assert np.array_equal(online.features(profile, before, as_of)[1], online.features(profile, after, as_of)[1],
                          equal_nan=True)


def test_the_live_path_neither_counts_it_as_interest_nor_warns_about_it(demo, params):
    _, with_new = demo
    spec = infer_spec(with_new.leads, with_new.activities, params.features)
    as_of = 10 * 86_400_000_000
    acts = [(as_of - 1, NEW, "phone")]
    assert not live.engaged(acts, as_of, spec.sales_activity_types)
    assert live.engaged([(as_of - 1, "page_view", "web")], as_of, spec.sales_activity_types)
    assert live.warnings_for(spec, {}, acts, as_of) == []
    assert live.warnings_for(spec, {}, [(as_of - 1, "podcast_listen", "web")], as_of) != []


def test_sla_moments_and_attribution_treat_it_as_sales(demo, params):
    export, with_new = demo
    listed = params.features.sales_activity_types
    pd.testing.assert_frame_equal(evaluation_moments(with_new, listed), evaluation_moments(export, listed))
    _, touches = _journeys(with_new, listed)
    assert len(touches) > 0 and "phone" not in set(touches["channel"])


def test_an_unknown_type_from_a_sales_logged_source_is_named_as_sales_and_never_a_feature(tmp_path, params):
    """Salesforce Task "Product Demo" (Task is logged by sales) → sales_product_demo, end to end."""
    report = import_export(salesforce(tmp_path / "src"), tmp_path / "out", load_mapping("salesforce"))
    assert report.unknown_values["activities.task.activity_type"]["Product Demo"]["as"] == NEW
    export = read_export(tmp_path / "out")
    assert NEW in set(export.activities["activity_type"])
    spec = infer_spec(export.leads, export.activities, params.features)
    assert NEW not in spec.activity_types
    assert spec.activity_types  # the marketing ones are there: webinar_attendance, event_visit
    # A campaign response the value table does not know stays marketing's own type (not logged by sales).
    members = tmp_path / "src" / "Campaign.csv"
    members.write_text(members.read_text(encoding="utf-8").replace("Webinar", "Podcast"), encoding="utf-8")
    report = import_export(tmp_path / "src", tmp_path / "out2", load_mapping("salesforce"))
    assert report.unknown_values["activities.campaign_response.activity_type"]["Podcast"]["as"] == "podcast"


@pytest.mark.parametrize("preset, source", [("hubspot", "engagements"), ("dynamics365", "activities"),
                                            ("pipedrive", "activities"), ("salesforce", "task"), ("salesforce", "event")])
def test_every_preset_marks_its_sales_logged_activities(preset, source):
    assert load_mapping(preset).tables["activities"][source].logged_by == "sales"


def test_logged_by_is_for_activities_only(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("extends: salesforce\ntables:\n  leads:\n    lead:\n      logged_by: sales\n", encoding="utf-8")
    with pytest.raises(MappingError, match="leads.lead.logged_by: expected only on activities"):
        load_mapping(mapping_file=mapping)
