"""Snapshots drawn independently of the outcome keep the probability honest on the leads scored live."""

import pandas as pd

from leadscore.features.build import compute_features
from leadscore.features.contract import read_export
from leadscore.features.snapshots import first_opportunities, scoring_snapshots


def test_mean_probability_of_open_leads_matches_their_later_win_rate(trained, demo_dir, params):
    """At cut-offs in the test period, score every lead still open (as `leadscore score` does) and
    compare the mean probability with the share that got a won deal within the horizon."""
    export = read_export(demo_dir)
    model = trained["model"]
    horizon = pd.Timedelta(days=params.features.horizon_days)
    first = first_opportunities(export.opportunities).set_index("lead_id")
    predicted = observed = scored = 0.0
    for cut in pd.date_range(trained["summary"]["test_start"], export.data_end - horizon, freq="14D"):
        snaps = scoring_snapshots(export, cut)
        p = model.predict_proba(compute_features(snaps, export.leads, export.activities, model.spec))
        created, stage = snaps["lead_id"].map(first["created_at"]), snaps["lead_id"].map(first["stage"])
        won = (created >= cut) & (created <= cut + horizon) & (stage == "won")
        predicted, observed, scored = predicted + p.sum(), observed + won.sum(), scored + len(snaps)
    assert scored > 2000 and observed > 20
    mean_p, win_rate = predicted / scored, observed / scored
    assert abs(mean_p - win_rate) <= 0.02, (mean_p, win_rate)
