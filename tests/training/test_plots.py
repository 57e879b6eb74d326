"""Evaluation plots: every CSV/PNG pair is written, and the numbers behind the curves are right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore.training.plots import gains_curve, gains_table, shap_importance, win_rate_by_grade_table, write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = {
    "roc": ["scorer", "fpr", "tpr"],
    "pr": ["scorer", "recall", "precision"],
    "reliability": ["scorer", "bin", "mean_predicted", "observed_rate", "count"],
    "gains": ["scorer", "share_of_leads", "share_of_wins"],
    "win_rate_by_grade": ["scorer", "grade", "rows", "wins", "win_rate"],
    "score_distribution": ["scorer", "outcome", "bin_low", "bin_high", "share"],
    "shap_importance": ["feature", "mean_abs_shap", "group"],
}


def _grade(p: np.ndarray) -> np.ndarray:
    """Quartiles of p as grades, highest quartile A."""
    cuts = np.quantile(p, [0.25, 0.5, 0.75])
    return np.array(["D", "C", "B", "A"])[np.searchsorted(cuts, p, side="right")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 3000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal * 1.5 - 3)))).astype(int)
    scores = {
        "model": 1 / (1 + np.exp(-(signal * 1.5 - 3))),
        "rules": np.clip(np.round(y.mean() + 0.02 * (signal + rng.normal(size=n)), 2), 0.001, 1),  # coarse, with ties
        "logistic": rng.random(n) * 0.2,
    }
    importance = shap_importance(rng.normal(size=(200, 25)) * np.arange(1, 26), [f"f{i}" for i in range(25)],
                                 {f"f{i}": ("fit" if i % 2 else "interest") for i in range(24)})
    out = tmp_path_factory.mktemp("plots")
    pngs = write_plots(out, y, scores, grades={k: _grade(v) for k, v in scores.items()}, importance=importance,
                       title="test period: 3,000 snapshots")
    return {"out": out, "y": y, "scores": scores, "pngs": pngs}


def _csv(run, stem: str) -> pd.DataFrame:
    return pd.read_csv(run["out"] / f"{stem}.csv")


def test_every_plot_is_written_as_csv_and_png(run):
    assert set(run["pngs"]) == set(COLUMNS)
    for stem, columns in COLUMNS.items():
        png = run["pngs"][stem]
        assert png == run["out"] / f"{stem}.png"
        data = png.read_bytes()
        assert len(data) > 1000 and data[:8] == PNG_MAGIC, stem
        assert list(_csv(run, stem).columns) == columns, stem


def test_optional_plots_are_skipped_without_their_inputs(tmp_path):
    y = np.array([0, 1, 0, 1, 0, 0])
    pngs = write_plots(tmp_path, y, {"model": np.linspace(0.1, 0.6, 6)})
    assert set(pngs) == {"roc", "pr", "reliability", "gains", "score_distribution"}
    assert not (tmp_path / "win_rate_by_grade.csv").exists()
    assert not (tmp_path / "shap_importance.png").exists()


def test_curves_are_thinned_and_cover_every_scorer(run):
    for stem in ("roc", "pr", "gains"):
        table = _csv(run, stem)
        assert list(dict.fromkeys(table["scorer"])) == ["model", "rules", "logistic"], stem
        assert table.groupby("scorer").size().max() <= 200, stem


def test_roc_runs_from_origin_to_one_one(run):
    for _, part in _csv(run, "roc").groupby("scorer"):
        assert (part["fpr"].iloc[0], part["tpr"].iloc[0]) == (0.0, 0.0)
        assert (part["fpr"].iloc[-1], part["tpr"].iloc[-1]) == (1.0, 1.0)
        assert part["fpr"].is_monotonic_increasing and part["tpr"].is_monotonic_increasing


def test_pr_recall_rises_to_one(run):
    for _, part in _csv(run, "pr").groupby("scorer"):
        assert part["recall"].is_monotonic_increasing
        assert part["recall"].iloc[0] == 0.0 and part["recall"].iloc[-1] == 1.0


def test_gains_are_monotone_and_end_at_one_one(run):
    gains = _csv(run, "gains")
    for name, part in gains.groupby("scorer"):
        assert (np.diff(part["share_of_leads"]) > 0).all(), name
        assert (np.diff(part["share_of_wins"]) >= 0).all(), name
        assert (part["share_of_leads"].iloc[-1], part["share_of_wins"].iloc[-1]) == (1.0, 1.0), name
    # A scorer with signal finds wins faster than random at 20 % of the leads; pure noise does not by much.
    at_20 = {name: np.interp(0.2, part["share_of_leads"], part["share_of_wins"]) for name, part in gains.groupby("scorer")}
    assert at_20["model"] > 0.4 > at_20["logistic"]


def test_perfect_scorer_finds_every_win_at_the_base_rate():
    y = np.zeros(150, dtype=int)
    y[[3, 17, 40, 41, 90, 99, 120, 149]] = 1  # base rate 8 / 150
    share_leads, share_wins = gains_curve(y, y.astype(float))
    first_full = share_leads[np.argmax(share_wins == 1.0)]
    assert first_full == pytest.approx(8 / 150)
    below = share_leads < 8 / 150
    np.testing.assert_allclose(share_wins[below], share_leads[below] / (8 / 150))


def test_thinned_perfect_scorer_gains_stay_on_the_perfect_curve():
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.05).astype(int)
    gains = gains_table(y, {"perfect": y + 0.0})
    assert len(gains) == 200
    expected = np.minimum(gains["share_of_leads"] / y.mean(), 1.0)
    np.testing.assert_allclose(gains["share_of_wins"], expected, atol=1e-12)


def test_gains_ties_keep_row_order():
    # Both rows tie; the stable order works row 0 (not won) before row 1 (won).
    share_leads, share_wins = gains_curve(np.array([0, 1, 0]), np.array([0.5, 0.5, 0.1]))
    np.testing.assert_allclose(share_wins, [0, 0, 1, 1])
    np.testing.assert_allclose(share_leads, [0, 1 / 3, 2 / 3, 1])
    # Many ties: within each score level, rows are worked in row order, whatever the sort picks.
    p = np.random.default_rng(1).integers(0, 3, 200) / 2.0
    y = (np.arange(200) % 2).astype(int)
    _, share_wins = gains_curve(y, p)
    order = np.lexsort((np.arange(200), -p))
    np.testing.assert_allclose(share_wins[1:], np.cumsum(y[order]) / y.sum())


def test_win_rate_by_grade_counts_every_row_once(run):
    table = _csv(run, "win_rate_by_grade")
    assert (table.groupby("scorer")["rows"].sum() == len(run["y"])).all()
    assert (table.groupby("scorer")["wins"].sum() == run["y"].sum()).all()
    model = table[table["scorer"] == "model"].set_index("grade")
    assert list(model.index) == ["A", "B", "C", "D"]
    assert model.loc["A", "win_rate"] > model.loc["D", "win_rate"]


def test_win_rate_by_grade_on_a_hand_built_example():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 1])
    grades = {"rules": np.array(["A", "A", "A", "A", "B", "B", "C", "C", "C", "C"])}
    table = win_rate_by_grade_table(y, grades).set_index("grade")
    assert table["rows"].to_dict() == {"A": 4, "B": 2, "C": 4, "D": 0}
    assert table["wins"].to_dict() == {"A": 2, "B": 1, "C": 1, "D": 0}
    assert table.loc[["A", "B", "C"], "win_rate"].tolist() == [0.5, 0.5, 0.25]
    assert np.isnan(table.loc["D", "win_rate"])


def test_score_distribution_shares_sum_to_one(run):
    table = _csv(run, "score_distribution")
    sums = table.groupby(["scorer", "outcome"])["share"].sum()
    assert len(sums) == 6
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    assert (table.groupby(["scorer", "outcome"]).size() == 20).all()
    for name, part in table.groupby("scorer"):
        assert part["bin_low"].min() == 0.0
        assert part["bin_high"].max() == pytest.approx(run["scores"][name].max())
    # The model's won rows sit higher than its not-won rows.
    model = table[table["scorer"] == "model"]
    centre = lambda o: float(((model["bin_low"] + model["bin_high"]) / 2 * model["share"])[model["outcome"] == o].sum())  # noqa: E731
    assert centre("won") > centre("not won")


def test_reliability_uses_equal_count_bins(run):
    table = _csv(run, "reliability")
    for _, part in table.groupby("scorer"):
        assert part["bin"].tolist() == list(range(1, 11))
        assert part["count"].sum() == len(run["y"])
        assert part["mean_predicted"].is_monotonic_increasing


def test_shap_importance_ranks_larger_contributions_first():
    rng = np.random.default_rng(0)
    contrib = np.column_stack([rng.normal(0, 0.1, 500), rng.normal(0, 2.0, 500), rng.normal(0, 0.5, 500)])
    table = shap_importance(contrib, ["small", "large", "middle"], {"large": "fit", "middle": "interest"})
    assert table["feature"].tolist() == ["large", "middle", "small"]
    assert table["group"].tolist() == ["fit", "interest", "other"]
    assert table["mean_abs_shap"].iloc[0] == pytest.approx(np.abs(contrib[:, 1]).mean())


def test_shap_importance_rejects_a_bias_column():
    with pytest.raises(ValueError, match="bias"):
        shap_importance(np.zeros((4, 3)), ["a", "b"], {})


def test_single_class_labels_are_refused(tmp_path):
    with pytest.raises(ValueError, match="both classes"):
        write_plots(tmp_path, np.zeros(10), {"model": np.linspace(0, 1, 10)})
