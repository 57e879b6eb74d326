"""The demo export sets a leak trap (sales activities after the hand-over); the pipeline must not fall in."""

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore.features.build import compute_features
from leadscore.features.contract import read_export
from leadscore.features.spec import sales_rows
from leadscore.training.dataset import load_dataset


def test_the_trap_is_real_a_careless_feature_would_leak(trained, demo_dir):
    table, spec = load_dataset(trained["dataset"])
    export = read_export(demo_dir)
    sales = export.activities[sales_rows(export.activities["activity_type"], spec.sales_activity_types)]
    careless = table["lead_id"].map(sales.groupby("lead_id").size()).fillna(0)
    # Counting a lead's sales activities regardless of time predicts the label almost perfectly …
    assert roc_auc_score(table["label"], careless) > 0.9
    # … and no feature of ours is built from them.
    assert not any(t in name for name in spec.names for t in spec.sales_activity_types)


def test_training_features_equal_features_from_the_export_cut_at_as_of(trained, demo_dir):
    """Rebuild sampled snapshots from an export truncated at their as_of: nothing may differ."""
    table, spec = load_dataset(trained["dataset"])
    export = read_export(demo_dir)
    sample = table.sample(150, random_state=3)
    for _, row in sample.iterrows():
        known = export.activities[(export.activities["lead_id"] == row["lead_id"]) & (export.activities["occurred_at"] < row["as_of"])]
        lead = export.leads[export.leads["lead_id"] == row["lead_id"]]
        snap = pd.DataFrame({"lead_id": [row["lead_id"]], "as_of": [row["as_of"]]})
        rebuilt = compute_features(snap, lead, known, spec).iloc[0]
        for name in spec.names:
            a, b = rebuilt[name], row[name]
            assert (pd.isna(a) and pd.isna(b)) or a == b or (isinstance(a, float) and np.isclose(a, b, rtol=0, atol=0)), name


def test_no_snapshot_after_the_hand_over(trained, demo_dir):
    table, _ = load_dataset(trained["dataset"])
    export = read_export(demo_dir)
    first = export.opportunities.groupby("lead_id")["created_at"].min()
    handed = table["lead_id"].map(first)
    assert (handed.isna() | (table["as_of"] <= handed)).all()


def test_a_leaky_profile_column_stops_training_unless_allowed(demo_dir, params, tmp_path):
    """A CRM 'status' column written after the deal (like X Education's Tags) is caught by name."""
    import json

    import pytest

    from leadscore.training.audit import LeakageError
    from leadscore.training.dataset import build_dataset

    export = read_export(demo_dir)
    won = set(export.opportunities.loc[export.opportunities["stage"] == "won", "lead_id"])
    export.leads["crm_status"] = export.leads["lead_id"].map(lambda i: "customer" if i in won else "nurturing")
    with pytest.raises(LeakageError) as err:
        build_dataset(export, params, tmp_path / "refused")
    assert "crm_status [single_feature_auc]" in str(err.value) and "--allow-leaky" in str(err.value)
    summary = build_dataset(export, params, tmp_path / "allowed", allow_leaky=True)
    audit = json.loads((tmp_path / "allowed" / "audit.json").read_text())
    assert summary["leakage_audit"] == "findings allowed by --allow-leaky"
    assert [f["column"] for f in audit["findings"]] == ["crm_status"] and audit["allowed_leaky"] is True


def test_the_demo_features_pass_the_audit(trained):
    import json

    audit = json.loads((trained["dataset"] / "audit.json").read_text())
    assert audit["passed"] and audit["checked"] == len(trained["model"].spec.names)
    assert max(audit["single_feature_auc"].values()) < 0.9


def test_a_profile_date_after_the_snapshot_stops_training(demo_dir, params, tmp_path):
    """A date column in the leads table (current values) that is later than a snapshot was not known then."""
    import json

    import pytest

    from leadscore.training.audit import LeakageError
    from leadscore.training.dataset import build_dataset

    export = read_export(demo_dir)
    first_deal = export.opportunities.groupby("lead_id")["created_at"].min()
    # 'budget confirmed' is typically written by sales when the deal is opened
    export.leads["budget_confirmed_on"] = export.leads["lead_id"].map(first_deal).dt.strftime("%Y-%m-%d")
    with pytest.raises(LeakageError) as err:
        build_dataset(export, params, tmp_path / "refused")
    assert "budget_confirmed_on [dated_after_snapshot]" in str(err.value)
    assert "recorded at or after the row's snapshot" in str(err.value)
    # a date known from the start (the lead's creation day) passes this check
    export.leads["budget_confirmed_on"] = export.leads["created_at"].dt.strftime("%Y-%m-%d")
    export.leads.loc[export.leads.index[::2], "budget_confirmed_on"] = None
    build_dataset(export, params, tmp_path / "early", allow_leaky=True)
    audit = json.loads((tmp_path / "early" / "audit.json").read_text())
    assert [f for f in audit["findings"] if f["check"] == "dated_after_snapshot"] == []
