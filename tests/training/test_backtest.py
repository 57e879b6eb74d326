"""Backtest, baselines, capacity thresholds, the promotion gate and rollback."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.models.registry import use_tracking
from leadscore.training.metrics import compare, lead_bootstrap, top_k, verdict, week_codes
from leadscore.training.thresholds import choose_thresholds, cutoff_for_precision, cutoff_for_volume, threshold_table


def test_top_k_takes_the_best_k_of_every_week():
    week = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.9, 0.1, 0.5, 0.2, 0.8, 0.7])
    y = np.array([1, 0, 0, 0, 1, 0])
    m = top_k(y, p, week, 1)  # week 0: row 0 (won); week 1: row 4 (won)
    assert m["top_k_rows"] == 2 and m["top_k_win_rate"] == 1.0 and m["top_k_share_of_wins"] == 1.0
    assert m["top_k_lift"] == pytest.approx(1.0 / (2 / 6))
    assert top_k(y, 1 - p, week, 1)["top_k_win_rate"] == 0.0


def test_bootstrap_draws_whole_leads():
    leads = np.array(["a", "a", "a", "b", "c", "c"])
    for idx in lead_bootstrap(leads, 50, seed=1):
        drawn = pd.Series(leads[idx]).value_counts()
        # every lead comes with all of its rows, as often as it was drawn
        assert all(n % (leads == lead).sum() == 0 for lead, n in drawn.items())


def test_compare_gives_intervals_and_a_verdict():
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.1).astype(int)
    good = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.1, n), 0.001, 0.999)
    noise = rng.random(n) * 0.2
    r = compare(y, {"model": good, "rules": noise}, np.arange(n) // 100, np.arange(n), 10, n_boot=50, seed=0)
    lo, hi = r["scorers"]["model"]["interval"]["roc_auc"]
    assert lo <= r["scorers"]["model"]["roc_auc"] <= hi
    assert r["difference"]["rules"]["roc_auc"]["interval"][0] > 0
    assert verdict(r["difference"]["rules"], "model", "rules").startswith("model beats rules")
    flipped = compare(y, {"model": noise, "rules": good}, np.arange(n) // 100, np.arange(n), 10, n_boot=50)
    assert "does not beat" in verdict(flipped["difference"]["rules"], "model", "rules")


def test_capacity_sets_the_sql_threshold_and_the_grades(params):
    rng = np.random.default_rng(3)
    week = np.repeat(np.arange(10), 500)
    p = rng.beta(1, 20, len(week))
    cut = cutoff_for_volume(p, 10, 50)
    assert (p >= cut).sum() == 500  # exactly the capacity: 50 a week over 10 weeks
    t = choose_thresholds(p, week, params.thresholds)
    assert t["a"] > t["b"] == t["sales_ready"] > t["c"]
    assert t["sales_ready_leads_per_week"] == pytest.approx(params.thresholds.capacity_per_week)
    assert (p >= t["a"]).sum() / 10 == pytest.approx(params.thresholds.capacity_per_week * params.thresholds.grade_a_share)
    precise = cutoff_for_precision(p, 0.2)
    assert p[p >= precise].mean() >= 0.2 and p[p >= np.nextafter(precise, 0) - 1e-6].mean() < 0.2 + 1e-3
    table = threshold_table(p, week, capacity=50)
    assert table["leads_per_week"].is_monotonic_increasing  # cut-offs fall down the table
    assert table["expected_share_of_wins"].between(0, 1).all()


def test_model_stores_capacity_thresholds(trained, params):
    m = trained["model"]
    th = m.info["thresholds"]
    assert m.sales_ready == m.grades["b"] == th["sales_ready"]
    assert m.grades["a"] > m.grades["b"] > m.grades["c"]
    assert th["sales_ready_leads_per_week"] <= params.thresholds.capacity_per_week
    assert m.explain.sales_ready == m.sales_ready


def test_backtest_windows_follow_each_other_and_train_only_on_the_past(trained, params):
    bt = trained["metrics"]["backtest"]
    folds = [f for f in bt["folds"] if "skipped" not in f]
    assert len(bt["folds"]) == params.backtest.folds and len(folds) >= 2
    starts = [pd.Timestamp(f["start"]) for f in bt["folds"]]
    assert starts == sorted(starts)
    assert starts[-1] == pd.Timestamp(trained["summary"]["test_start"])
    assert bt["overall"]["rows"] == sum(f["rows"] for f in folds)
    for f in folds:
        assert set(f["scorers"]) == {"model", "rules", "logistic"}
        assert f["train_rows"] > 0 and f["won_deals"] > 0
    assert trained["metrics"]["test_rows"] == folds[-1]["rows"]


def test_backtest_fold_models_never_see_labels_after_their_cut_off(trained, params):
    from leadscore.training.backtest import fold_windows
    from leadscore.training.dataset import assign_split, dataset_params, load_dataset
    from leadscore.training.train import fit_model

    params = dataset_params(params, trained["dataset"])  # the training set's label horizon
    table, spec = load_dataset(trained["dataset"])
    start, _ = fold_windows(table["as_of"], pd.Timestamp(trained["summary"]["test_start"]), params.backtest.folds)[-2]
    known = table[table["as_of"] < start]
    split, _ = assign_split(known, params, test_start=start)
    model = fit_model(known.assign(split=split.to_numpy()), spec, params, start)
    horizon = pd.Timedelta(days=params.features.horizon_days)
    assert pd.Timestamp(model.info["train_period"][1]) + horizon <= start


def test_evaluation_writes_every_plot(trained):
    plots = trained["plots"]
    for stem in ("roc", "pr", "reliability", "gains", "win_rate_by_grade", "score_distribution", "shap_importance",
                 "backtest"):
        assert (plots / f"{stem}.csv").stat().st_size > 0 and (plots / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    roc = pd.read_csv(plots / "roc.csv")
    assert set(roc["scorer"]) == {"model", "rules", "logistic"}
    assert (plots / "thresholds.csv").exists()


def test_mlflow_run_carries_plots_backtest_and_thresholds(trained):
    import mlflow

    run_id = trained["registered"]["run_id"]
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "plots")}
    assert "plots/gains.png" in names and "plots/shap_importance.png" in names
    bt = mlflow.artifacts.load_dict(f"runs:/{run_id}/backtest.json")
    assert bt["overall"]["rows"] == trained["metrics"]["backtest"]["overall"]["rows"]
    run = mlflow.get_run(run_id)
    assert run.data.metrics["sales_ready"] == pytest.approx(trained["model"].sales_ready)
    assert "backtest_logistic_roc_auc" in run.data.metrics


@pytest.fixture()
def registry(tmp_path, trained, params):
    """A private, empty registry (the session's champion stays untouched)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "LEADSCORE_CACHE_DIR")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'gate.db'}"
    os.environ["LEADSCORE_CACHE_DIR"] = str(tmp_path / "cache")
    yield tmp_path
    for k, v in saved.items():
        os.environ[k] = v
    use_tracking()  # MLflow keeps the last URI globally


def _broken_copy(trained, folder):
    """The trained model with its calibration turned upside down: ranks backwards."""
    from leadscore.models.lgbm import LeadModel

    model = LeadModel.load(trained["model_dir"])
    model.calibrator = {"method": "platt", "a": -1.0, "b": 0.0}
    model.save(folder)
    return folder


def test_promotion_gate_refuses_a_worse_model_and_rollback_restores(registry, trained, params):
    from leadscore.training.promote import PromotionError, promote, rollback
    from leadscore.training.register import register_model

    def register(model_dir):
        return register_model(model_dir, trained["dataset"], trained["metrics"], params)["version"]

    v1 = register(trained["model_dir"])
    first = promote(trained["dataset"], params)
    assert first["promoted"] and first["champion_after"] == v1 and "the registry has no @champion, and over " in first["reasons"][0]
    with pytest.raises(PromotionError, match="no earlier one"):
        rollback(params)

    v2 = register(_broken_copy(trained, registry / "broken"))
    refused = promote(trained["dataset"], params)
    assert not refused["promoted"] and refused["champion_after"] == v1
    assert any("below the champion's" in r and "registry.max_auc_loss" in r for r in refused["reasons"])
    assert refused["metrics"]["challenger"]["roc_auc"] < 0.5 < refused["metrics"]["champion"]["roc_auc"]

    v3 = register(trained["model_dir"])  # as good as the champion: within the margins
    passed = promote(trained["dataset"], params)
    assert passed["promoted"] and passed["champion_after"] == v3 and v2 not in (v1, v3)
    back = rollback(params)
    assert back == {"model_name": params.registry.model_name, "champion_before": v3, "champion_after": v1}


def test_promote_and_rollback_commands_explain_without_traceback(registry, trained, params):
    runner = CliRunner()
    result = runner.invoke(app, ["promote", "--dataset", str(trained["dataset"])])
    assert result.exit_code == 1 and "leadscore register" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["rollback"])
    assert result.exit_code == 1 and "nothing to roll back" in result.output


def test_thresholds_command_prints_the_champions_table(trained, demo_dir, tmp_path):
    out = tmp_path / "t.csv"
    result = CliRunner().invoke(app, ["thresholds", "--data", str(demo_dir), "--weeks", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert {"threshold", "leads_per_week", "expected_win_rate", "expected_wins_per_week", "expected_share_of_wins"} <= set(table)
    assert (table["threshold"] - trained["model"].sales_ready).abs().min() < 1e-4
    assert "SQL threshold" in result.output


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_week_codes_do_not_depend_on_the_time_unit(unit):
    days = pd.Series(pd.to_datetime(["2025-01-05", "2025-01-06", "2025-01-12", "2025-01-13"])).astype(f"datetime64[{unit}]")
    codes = week_codes(days)  # Sunday | Monday … Sunday | Monday
    assert codes[0] != codes[1] == codes[2] != codes[3] and codes[3] == codes[1] + 1
