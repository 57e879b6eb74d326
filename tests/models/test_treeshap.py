"""FastTreeShap gives LightGBM's own TreeSHAP values (and shap's), on the inputs production sends."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from leadscore.models.treeshap import FastTreeShap

TOL = 1e-6
N_ROWS = 2500
PARAMS = {"objective": "binary", "num_leaves": 31, "min_data_in_leaf": 5, "learning_rate": 0.1, "seed": 0,
          "deterministic": True, "num_threads": 1, "verbose": -1}


def _numeric_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Count-like and continuous columns, some NaN, some with many exact zeros."""
    X = np.column_stack([
        rng.normal(size=n), rng.normal(size=n), rng.poisson(2.0, n).astype(float),
        rng.exponential(1.0, n), rng.integers(0, 4, n).astype(float), rng.normal(size=n),
    ])
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.10, 3] = np.nan
    X[rng.random(n) < 0.30, 5] = 0.0
    logit = (np.nan_to_num(X[:, 0], nan=1.0) * X[:, 1] + 0.4 * X[:, 2] - np.nan_to_num(X[:, 3]) + 0.5 * (X[:, 4] == 2)
             + np.where(X[:, 5] == 0, 0.8, X[:, 5]) + rng.normal(size=n))
    return X, (logit > 0.5).astype(int)


def _split_fields(booster: lgb.Booster, field: str) -> set:
    """Every value of one split field (e.g. ``missing_type``) over the booster's trees."""
    found, stack = set(), [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            found.add(node[field])
            stack += [node["left_child"], node["right_child"]]
    return found


def _on_thresholds(booster: lgb.Booster, rows: np.ndarray) -> np.ndarray:
    """Copies of ``rows`` with one feature set exactly to a numeric split's threshold (``<=`` goes left)."""
    out, stack = [], [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node["decision_type"] == "<=":
                row = rows[len(out) % len(rows)].copy()
                row[node["split_feature"]] = node["threshold"]
                out.append(row)
            stack += [node["left_child"], node["right_child"]]
    return np.array(out)


def _repeats_a_feature(booster: lgb.Booster) -> bool:
    """Whether some root-to-leaf path splits twice on one feature (the duplicate-feature case)."""
    stack = [(t["tree_structure"], ()) for t in booster.dump_model()["tree_info"]]
    while stack:
        node, seen = stack.pop()
        if "split_index" in node:
            if node["split_feature"] in seen:
                return True
            stack += [(node[s], seen + (node["split_feature"],)) for s in ("left_child", "right_child")]
    return False


@pytest.fixture(scope="module")
def numeric():
    rng = np.random.default_rng(7)
    X, y = _numeric_data(rng, 4000)
    booster = lgb.train(PARAMS, lgb.Dataset(X, y), num_boost_round=60)
    rows, _ = _numeric_data(np.random.default_rng(8), N_ROWS)
    rows[::10, 1] = np.nan  # never missing in training: its splits have missing type None (NaN → 0.0)
    return booster, np.vstack([rows, _on_thresholds(booster, rows)])


@pytest.fixture(scope="module")
def zero_missing():
    rng = np.random.default_rng(9)
    X, y = _numeric_data(rng, 4000)
    booster = lgb.train({**PARAMS, "zero_as_missing": True}, lgb.Dataset(X, y), num_boost_round=40)
    rows, _ = _numeric_data(np.random.default_rng(10), N_ROWS)
    return booster, rows


@pytest.fixture(scope="module")
def categorical():
    """Trained on pandas categoricals; explained on the float index matrix LightGBM sees for them."""
    rng = np.random.default_rng(11)
    n = 4000
    levels = {"industry": 6, "lead_source": 70}  # 70 levels: the category bitset spans three words
    frame = pd.DataFrame({"employees": rng.lognormal(3, 1, n), "pricing_page_views_14d": rng.poisson(1.5, n)})
    for name, k in levels.items():
        codes = rng.integers(0, k, n)
        codes[rng.random(n) < 0.05] = -1  # missing
        frame[name] = pd.Categorical.from_codes(codes, categories=[f"{name}_{i}" for i in range(k)])
    logit = (0.3 * frame.pricing_page_views_14d + 0.8 * (frame.industry.cat.codes % 3 == 0)
             + 0.6 * np.isin(frame.lead_source.cat.codes, [3, 40, 41, 65]) - 0.2 * np.log(frame.employees)
             + rng.normal(size=n))
    booster = lgb.train({**PARAMS, "min_data_per_group": 10, "cat_smooth": 1.0, "max_cat_threshold": 64},
                        lgb.Dataset(frame, (logit > 0).astype(int)), num_boost_round=60)
    rows = np.column_stack([
        rng.lognormal(3, 1, N_ROWS), rng.poisson(1.5, N_ROWS).astype(float),
        rng.integers(0, levels["industry"] + 2, N_ROWS).astype(float),  # 6 and 7 were never seen
        rng.integers(0, levels["lead_source"] + 30, N_ROWS).astype(float),  # up to 99: past the bitset
    ])
    rows[rng.random(N_ROWS) < 0.05, 2] = np.nan
    rows[rng.random(N_ROWS) < 0.05, 3] = np.nan
    rows[:20, 2] = -1.0  # negative indices go right in LightGBM
    return booster, rows


@pytest.mark.parametrize("model", ["numeric", "zero_missing", "categorical"])
def test_equals_pred_contrib_and_sums_to_raw_score(model, request):
    booster, X = request.getfixturevalue(model)
    fast = FastTreeShap(booster).contributions(X)
    expected = booster.predict(X, pred_contrib=True)
    assert fast.shape == expected.shape == (len(X), X.shape[1] + 1)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(fast.sum(axis=1), booster.predict(X, raw_score=True), rtol=0, atol=TOL)


def test_models_exercise_every_decision_rule(numeric, zero_missing, categorical):
    """Guards the test above: the models really contain the split kinds it claims to cover."""
    assert {"NaN", "None"} <= _split_fields(numeric[0], "missing_type")
    assert np.isnan(numeric[1]).any()
    assert "Zero" in _split_fields(zero_missing[0], "missing_type")
    assert (zero_missing[1] == 0).any() and np.isnan(zero_missing[1]).any()
    assert "==" in _split_fields(categorical[0], "decision_type")
    assert np.isnan(categorical[1][:, 2]).any() and (categorical[1][:, 3] >= 70).any()  # missing and unseen
    assert all(_repeats_a_feature(b) for b, _ in (numeric, zero_missing, categorical))


def test_equals_shap_tree_explainer(numeric):
    shap = pytest.importorskip("shap")
    booster, X = numeric
    explainer = shap.TreeExplainer(booster)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap warns that LightGBM binary output changed shape
        values = explainer.shap_values(X)
    values = np.asarray(values[-1] if isinstance(values, list) else values)  # older shap: [negative, positive]
    fast = FastTreeShap(booster)
    contrib = fast.contributions(X)
    assert values.shape == (len(X), X.shape[1])
    np.testing.assert_allclose(contrib[:, :-1], values, rtol=0, atol=TOL)
    base = np.ravel(explainer.expected_value)[-1]
    assert abs(fast.expected_value_ - base) <= TOL


def test_single_row_matches_batch_and_is_deterministic(categorical):
    booster, X = categorical
    fast = FastTreeShap(booster)
    batch = fast.contributions(X)
    for i in (0, 25, len(X) - 1):
        one = fast.contributions(X[i : i + 1])
        assert one.shape == (1, X.shape[1] + 1)
        np.testing.assert_allclose(one[0], booster.predict(X[i : i + 1], pred_contrib=True)[0], rtol=0, atol=TOL)
        np.testing.assert_array_equal(one[0], batch[i])
    np.testing.assert_array_equal(fast.contributions(X[7]), fast.contributions(X[7:8]))  # a 1-D row is one row
    np.testing.assert_array_equal(fast.contributions(X), batch)


def test_single_leaf_trees():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    booster = lgb.train({**PARAMS, "min_gain_to_split": 1e9}, lgb.Dataset(X, (X[:, 0] > 0.3).astype(int)), 3)
    assert all(t["num_leaves"] == 1 for t in booster.dump_model()["tree_info"])
    fast = FastTreeShap(booster).contributions(X)
    np.testing.assert_allclose(fast, booster.predict(X, pred_contrib=True), rtol=0, atol=TOL)
    assert np.all(fast[:, :-1] == 0)


def test_bad_input_says_what_was_expected(numeric):
    booster, X = numeric
    fast = FastTreeShap(booster)
    with pytest.raises(ValueError, match=r"expects 6 columns.*shape \(4, 5\)"):
        fast.contributions(X[:4, :5])
    swapped = pd.DataFrame(X[:4, ::-1], columns=fast.feature_names_[::-1])
    with pytest.raises(ValueError, match=r"column 0 is 'Column_5', expected 'Column_0'"):
        fast.contributions(swapped)
    np.testing.assert_array_equal(fast.contributions(swapped[fast.feature_names_]), fast.contributions(X[:4]))
    multiclass = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                           lgb.Dataset(X[:300], np.arange(300) % 3), num_boost_round=2)
    with pytest.raises(ValueError, match="single-output"):
        FastTreeShap(multiclass)
    linear = lgb.train({**PARAMS, "linear_tree": True}, lgb.Dataset(np.nan_to_num(X[:300]), np.arange(300) % 2), 2)
    with pytest.raises(ValueError, match="linear leaves"):
        FastTreeShap(linear)
