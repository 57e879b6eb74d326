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
    horizon = pd.Timedelta(days=model.info["horizon_days"])  # the horizon the model was trained to predict
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


def test_calibration_keeps_the_demo_ranking_and_spread(trained, params):
    """On the demo's untouched test period the served probability ranks like the booster's margin and
    no probability holds more than max_tie_share of the leads (main: isotonic, 14 distinct values,
    51 % of test rows at one value, ROC AUC 0.871 → 0.802)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from leadscore.features.build import encode_matrix
    from leadscore.models.calibration import spread_report
    from leadscore.training.dataset import load_dataset

    settings = params.train.calibration
    model = trained["model"]
    table, spec = load_dataset(trained["dataset"])
    test = table[table["split"] == "test"]
    y = test["label"].to_numpy()
    margin = model.margin(encode_matrix(test[spec.names], spec))
    p = model.probability(margin)
    assert roc_auc_score(y, p) >= roc_auc_score(y, margin) - settings.max_auc_loss
    spread = spread_report(p)
    assert spread["top_share"] <= settings.max_tie_share, spread
    assert spread["distinct"] >= settings.min_distinct_per_1000 * len(p) / 1000
    # why it was chosen, and its spread on the calibration rows, travel with the model
    cal = model.calibrator
    assert cal["choice"][-1].startswith(f"{cal['method']}: ") and cal["choice"][-1].endswith(": chosen")
    assert set(cal["candidates"]) == {"platt", "beta", "isotonic"}
    assert cal["spread"]["rows"] == model.info["calibration_rows"]
    assert cal["spread"]["top_share"] <= settings.max_tie_share


def test_flat_models_choose_their_calibrator_the_same_way(params):
    """training.flat_eval calibrates with the same fit_calibrator and the same train.calibration."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from leadscore.models.calibration import spread_report
    from leadscore.training.flat_eval import fit_flat_model, model_probability

    rng = np.random.default_rng(3)
    n = 6_000
    X = pd.DataFrame({"visits": rng.poisson(2.0, n).astype(float), "noise": rng.normal(size=n),
                      "channel": pd.Categorical(rng.choice(["referral", "search", "social"], n))})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-4.0 + 0.7 * X["visits"] + 1.2 * (X["channel"] == "referral"))))).astype(int)
    fast = params.model_copy(update={"train": params.train.model_copy(update={
        "num_boost_round": 100, "early_stopping_rounds": 20,
        "lgbm": {**params.train.lgbm, "learning_rate": 0.1, "num_threads": 1}})})
    rows = np.arange(n)
    fitted = fit_flat_model(X, y.to_numpy(), rows[:3_000], rows[3_000:4_000], rows[4_000:5_000], fast, refit=False)
    cal = fitted["calibrator"]
    assert cal["choice"][-1].endswith(": chosen") and cal["spread"]["rows"] == 1_000
    test = X.iloc[5_000:]
    p = model_probability(fitted, test)
    margin = fitted["booster"].predict(test.set_axis([f"f{i}" for i in range(3)], axis=1),
                                       num_iteration=fitted["rounds"], raw_score=True)
    assert roc_auc_score(y[5_000:], p) >= roc_auc_score(y[5_000:], margin) - params.train.calibration.max_auc_loss
    assert spread_report(p)["top_share"] <= max(params.train.calibration.max_tie_share, spread_report(margin)["top_share"])
