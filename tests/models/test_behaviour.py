"""Behaviour the model must show whatever it learned: more hand-raising never lowers a score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import compute_features, encode_matrix
from leadscore.features.contract import read_export
from leadscore.features.snapshots import scoring_snapshots


@pytest.mark.parametrize("activity_type", ["demo_request", "contact_form", "trial_signup"])
def test_one_more_hand_raiser_never_lowers_the_probability(trained, demo_dir, activity_type):
    export = read_export(demo_dir)
    model = trained["model"]
    as_of = export.data_end - pd.Timedelta(days=30)
    snaps = scoring_snapshots(export, as_of)
    # every fourth lead without any history: the first interaction must not hurt either
    silent = set(snaps["lead_id"].iloc[::4])
    history = export.activities[~export.activities["lead_id"].isin(silent)]
    raw_before = compute_features(snaps, export.leads, history, model.spec)
    extra = pd.DataFrame({
        "lead_id": snaps["lead_id"].to_numpy(),
        "occurred_at": as_of - pd.Timedelta(minutes=5),
        "activity_type": activity_type,
        "channel": "web",
    })
    raw_after = compute_features(snaps, export.leads, pd.concat([history, extra], ignore_index=True), model.spec)
    before, after = model.predict_proba(raw_before), model.predict_proba(raw_after)
    assert len(snaps) > 500
    worst = np.argsort(after - before)[:3]
    assert np.all(after >= before), [(snaps["lead_id"].iat[i], before[i], after[i]) for i in worst]
    # the margin (before the monotone calibration, which has flat steps) never falls and usually rises
    m_before = model.margin(encode_matrix(raw_before, model.spec))
    m_after = model.margin(encode_matrix(raw_after, model.spec))
    assert np.all(m_after >= m_before) and (m_after > m_before).mean() > 0.5
