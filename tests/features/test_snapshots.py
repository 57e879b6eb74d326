import pandas as pd

from leadscore.config.params import load_params
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots, training_snapshots
from tests.helpers import tiny_export

CFG = load_params().features.model_copy(update={"horizon_days": 30, "snapshot_every_days": 7, "max_snapshot_age_days": 35})


def test_labels_and_censoring(tmp_path):
    export = read_export(tiny_export(tmp_path / "x"))  # data end: 2025-03-30 (L1's close)
    snaps, counts = training_snapshots(export, CFG)
    l1 = snaps[snaps["lead_id"] == "L1"]
    # L1: deal created 2025-02-15 and won → label 1 exactly for as_of within 30 days before it
    expected = ((pd.Timestamp("2025-02-15") - l1["as_of"]) <= pd.Timedelta(days=30)).astype("int8")
    assert l1["label"].tolist() == expected.tolist() and l1["label"].sum() == 3
    # L2's deal was lost → never positive; L3 never had a deal → 0
    assert snaps.loc[snaps["lead_id"] != "L1", "label"].sum() == 0
    # no snapshot after the hand-over
    assert (l1["as_of"] <= pd.Timestamp("2025-02-15")).all()
    # L3's late snapshots (as_of + 30 days > 2025-03-30) are censored, not negatives
    assert snaps.loc[snaps["lead_id"] == "L3", "as_of"].max() <= pd.Timestamp("2025-02-28")
    assert counts.censored_horizon == 2 and counts.positives == 3


def test_open_deal_in_horizon_is_censored(tmp_path):
    folder = tiny_export(tmp_path / "x")
    opps = pd.read_csv(folder / "opportunities.csv")
    opps.loc[opps["lead_id"] == "L2", ["stage", "closed_at"]] = ["open", None]
    opps.to_csv(folder / "opportunities.csv", index=False)
    snaps, counts = training_snapshots(read_export(folder), CFG)
    l2 = snaps[snaps["lead_id"] == "L2"]
    assert counts.censored_open_deal > 0
    assert ((pd.Timestamp("2025-03-01") - l2["as_of"]) > pd.Timedelta(days=30)).all()


def test_scoring_snapshots_skip_handed_over_and_future_leads(tmp_path):
    export = read_export(tiny_export(tmp_path / "x"))
    assert scoring_snapshots(export, pd.Timestamp("2025-01-20"))["lead_id"].tolist() == ["L1", "L2"]
    assert scoring_snapshots(export, pd.Timestamp("2025-02-20"))["lead_id"].tolist() == ["L2", "L3"]
    assert scoring_snapshots(export, pd.Timestamp("2025-03-05"))["lead_id"].tolist() == ["L3"]
