"""Exact path-dependent TreeSHAP for LightGBM boosters, compiled with numba.

The values are the ones ``booster.predict(X, pred_contrib=True)`` returns (raw margin, last column
the expected value), computed with a quadrature form of Linear TreeSHAP (Yu et al. 2022) instead of
the classic O(T·L·D²) path extend/unwind recursion.

Why it is exact. For a leaf ``l`` with value ``v`` whose path splits on ``d`` distinct features, let
feature ``j`` have zero fraction ``z_j`` (product of ``count(child) / count(parent)`` over the path's
splits on ``j``) and one fraction ``o_j`` (1 if the row takes all of them, else 0). TreeSHAP gives
feature ``i`` the share

    v · (o_i − z_i) · Σ_{S ⊆ others} |S|!(d−1−|S|)!/d! · Π_{j∈S} o_j · Π_{j∉S, j≠i} z_j.

The Shapley weight is a Beta integral, ``∫₀¹ t^|S| (1−t)^(d−1−|S|) dt``, so the sum equals

    v · (o_i − z_i) · ∫₀¹ Π_{j≠i} a_j(t) dt,    a_j(t) = (1−t)·z_j + t·o_j,

the integral of a polynomial of degree d−1. Gauss–Legendre quadrature with K = ⌈D/2⌉ nodes (D the
tree's largest number of distinct features on a path) integrates it exactly, so the result is exact
up to floating-point rounding, like LightGBM's own. Each quadrature term is a product of positive
factors with a positive weight, so nothing cancels and rounding stays near 1e-15 relative.

Complexity. The vectors ``Π a_j(t_k)`` multiply on the way down a tree and add up on the way back,
so a row costs O(N·K) per tree (N nodes), i.e. O(T·L·D) against the classic O(T·L·D²). A feature
met again deeper on a path has its earlier factor replaced by the combined one; the leaves below
the deeper split are credited there and taken out of the upper split's share. Everything that does
not depend on the row — ``a(t_k)`` for o ∈ {0, 1}, ``w_k / a``, zero fractions, categorical
bitsets, the expected value — is built once from ``booster.dump_model()``.

Layout. Rows go through a tree together, a block of up to 128 at a time, with the row as the
innermost (SIMD) axis; blocks run in parallel (``prange``). Decision rules are LightGBM's
(``Tree::NumericalDecision`` / ``Tree::CategoricalDecision``): inputs with |x| ≤ 1e-35f count as
0.0, as in LightGBM's predictor; ``<=`` thresholds; missing type None (NaN → 0.0), Zero (0.0 and
NaN → default side) or NaN (NaN → default side); categorical values are truncated to int, NaN and
negatives go right, members of the split's category bitset go left.
"""

from __future__ import annotations

import math
from typing import Any

import lightgbm as lgb
import numpy as np
from numba import get_num_threads, njit, prange

MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
# LightGBM's kZeroThreshold is the float literal 1e-35f, compared as a double.
ZERO_THRESHOLD = float(np.float32(1e-35))
# Rows that pass through a tree together: at least MIN_BLOCK so the row loops run as SIMD code,
# at most what keeps a block's per-node vectors within about BLOCK_BYTES (the core's L2 cache).
MIN_BLOCK, MAX_BLOCK, BLOCK_BYTES = 16, 128, 1 << 19
# Rows of the per-edge factor table (see _flatten).
A0, A1, PINV0, PINV1, V0, V1 = range(6)


class FastTreeShap:
    """Exact SHAP values (raw margin) of a single-output LightGBM booster, built once per booster.

    ``contributions(X)`` matches ``booster.predict(X, pred_contrib=True)``: shape
    ``(n_rows, n_features + 1)``, last column the expected value, each row summing to the raw score.
    ``X`` is a float matrix in the booster's feature order (``feature_names_``); categorical
    features hold category indices (0, 1, 2, … or NaN), as LightGBM sees pandas categoricals.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1:
            raise ValueError(
                f"FastTreeShap explains single-output boosters (binary, regression); this one has "
                f"{dump['num_tree_per_iteration']} trees per iteration (objective {dump.get('objective')!r})."
            )
        self.feature_names_: list[str] = list(dump["feature_names"])
        self.n_features_ = int(dump["max_feature_idx"]) + 1
        self.n_trees_ = len(dump["tree_info"])
        self._arrays, self.expected_value_, self.max_path_features_ = _flatten(dump["tree_info"])

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """SHAP values per row and feature plus the expected value, as ``pred_contrib`` returns them.

        ``X``: rows × features (one row may be 1-D); a DataFrame must have the booster's columns in order.
        """
        X = self._check(X)
        phi = np.zeros((X.shape[0], self.n_features_ + 1))
        block_rows = self._block_rows(X.shape[0])
        if X.shape[0] <= block_rows:  # one block: no threads to wake
            _explain_block(X, phi, 0, X.shape[0], *self._arrays)
        else:
            _explain(X, phi, block_rows, *self._arrays)
        phi[:, -1] = self.expected_value_
        return phi

    def _block_rows(self, n_rows: int) -> int:
        max_nodes, max_k = self._arrays[-2:]
        fits = max(MIN_BLOCK, min(MAX_BLOCK, BLOCK_BYTES // (8 * max_nodes * max_k)))
        return min(fits, max(MIN_BLOCK, -(-n_rows // get_num_threads())))  # spread small batches over threads

    def _check(self, X: Any) -> np.ndarray:
        columns = getattr(X, "columns", None)
        if columns is not None and [str(c) for c in columns] != self.feature_names_:
            found = [str(c) for c in columns]
            i = next((i for i, (a, b) in enumerate(zip(found, self.feature_names_)) if a != b),
                     min(len(found), len(self.feature_names_)))
            got = repr(found[i]) if i < len(found) else "missing"
            wanted = repr(self.feature_names_[i]) if i < self.n_features_ else "no column there"
            raise ValueError(
                f"FastTreeShap.contributions needs the booster's {self.n_features_} features in order; "
                f"column {i} is {got}, expected {wanted}."
            )
        try:
            X = np.ascontiguousarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                "FastTreeShap.contributions expects a numeric matrix (categoricals as category indices); "
                f"could not convert {type(X).__name__} to float64: {err}"
            ) from None
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            names = ", ".join(self.feature_names_[:5]) + (", …" if self.n_features_ > 5 else "")
            raise ValueError(
                f"FastTreeShap.contributions expects {self.n_features_} columns in the booster's order "
                f"({names}); got an array of shape {X.shape}."
            )
        return X


def _gauss_legendre(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights that integrate polynomials of degree ≤ 2k−1 over [0, 1] exactly."""
    x, w = np.polynomial.legendre.leggauss(k)
    return (x + 1.0) / 2.0, w / 2.0


def _bitset(categories: str) -> list[int]:
    """LightGBM's ``cat_threshold`` words for a dumped ``"1||4||9"`` category list."""
    cats = [int(c) for c in categories.split("||")]
    words = [0] * (max(cats) // 32 + 1)
    for c in cats:
        words[c // 32] |= 1 << (c % 32)
    return words


def _preorder(root: dict) -> tuple[list[dict], list[int]]:
    """The tree's nodes (leaves included) in preorder, and each node's parent position (-1: root)."""
    nodes, parent, stack = [], [], [(root, -1)]
    while stack:
        node, up = stack.pop()
        parent.append(up)
        nodes.append(node)
        if "split_index" in node:
            stack.append((node["right_child"], len(nodes) - 1))
            stack.append((node["left_child"], len(nodes) - 1))
    return nodes, parent


def _flatten(tree_info: list[dict]) -> tuple[tuple, float, int]:
    """Turn ``dump_model()["tree_info"]`` into the flat arrays the kernel reads.

    Nodes are numbered in preorder within each tree, so a parent comes before its children; node
    ``c`` other than the root also stands for the edge into it. Per edge: ``zero`` is the combined
    zero fraction of its feature down to it and ``prev`` the previous edge on the path that split on
    the same feature (-1: none). ``tab[row, off + c·K + k]`` holds, for quadrature node t_k:
    ``A0``/``A1`` the factor a(t_k) when the combined one fraction is 0/1, ``PINV0``/``PINV1`` the
    inverse of the previous edge's factor (1 without one), ``V0``/``V1`` the edge's share of the
    subtree sums, (o − z)·w_k / a(t_k).
    ``value`` is a leaf's value and 1 for a split, so the down pass can multiply it in blindly.
    """
    cols: dict[str, list] = {k: [] for k in (
        "left", "right", "feature", "threshold", "categorical", "zero_missing", "default_left", "nan_left",
        "cat_off", "cat_len", "value", "zero", "prev")}
    cat_bits: list[int] = []
    node_off, tab_off, ks, tables = [0], [0], [], []
    expected = 0.0
    max_path = 0
    for tree in tree_info:
        nodes, parent = _preorder(tree["tree_structure"])
        n = len(nodes)
        position = {id(nd): i for i, nd in enumerate(nodes)}
        cover = np.array([nd.get("internal_count", nd.get("leaf_count", 0)) for nd in nodes], dtype=np.float64)
        zero = np.ones(n)
        prev = np.full(n, -1, dtype=np.int64)
        last_edge: list[dict[int, int]] = [{} for _ in range(n)]  # feature → deepest edge on the path
        for c in range(1, n):
            p = parent[c]
            f = nodes[p]["split_feature"]
            prev[c] = last_edge[p].get(f, -1)
            zero[c] = (cover[c] / cover[p] if cover[p] > 0 else 0.0) * (zero[prev[c]] if prev[c] >= 0 else 1.0)
            last_edge[c] = {**last_edge[p], f: c}
        depth = max(len(last_edge[i]) for i in range(n) if "split_index" not in nodes[i])
        max_path = max(max_path, depth)
        k = max(1, math.ceil(depth / 2))
        t, w = _gauss_legendre(k)
        a0 = zero[:, None] * (1.0 - t)[None, :]
        a1 = a0 + t[None, :]
        with np.errstate(divide="ignore"):
            inv0 = np.where(a0 > 0, 1.0 / np.where(a0 > 0, a0, 1.0), 0.0)  # a0 = 0 only below an empty child
        inv1 = 1.0 / a1
        has_prev = (prev >= 0)[:, None]
        pinv0 = np.where(has_prev, inv0[np.maximum(prev, 0)], 1.0)
        pinv1 = np.where(has_prev, inv1[np.maximum(prev, 0)], 1.0)
        # An edge's share of its subtree's sums: (o − z)·w_k / a(t_k), for o = 0 and o = 1.
        v0 = -zero[:, None] * inv0 * w
        v1 = (1.0 - zero)[:, None] * inv1 * w
        tables.append(np.stack([a0, a1, pinv0, pinv1, v0, v1]).reshape(6, -1))
        tab_off.append(tab_off[-1] + n * k)
        ks.append(k)
        node_off.append(node_off[-1] + n)

        for i, nd in enumerate(nodes):
            internal = "split_index" in nd
            if "leaf_coeff" in nd:
                raise ValueError(
                    f"tree {tree['tree_index']} has linear leaves (linear_tree=True): TreeSHAP, like LightGBM's "
                    "pred_contrib, is only defined for constant leaves."
                )
            categorical = internal and nd["decision_type"] == "=="
            missing = MISSING_TYPES[nd["missing_type"]] if internal else 0
            threshold = float(nd["threshold"]) if internal and not categorical else 0.0
            default_left = bool(nd.get("default_left", False))
            cols["left"].append(position[id(nd["left_child"])] if internal else -1)
            cols["right"].append(position[id(nd["right_child"])] if internal else -1)
            cols["feature"].append(nd["split_feature"] if internal else -1)
            cols["value"].append(1.0 if internal else float(nd["leaf_value"]))
            cols["categorical"].append(categorical)
            cols["threshold"].append(threshold)
            cols["default_left"].append(default_left)
            cols["zero_missing"].append(missing == MISSING_TYPES["Zero"])
            # NumericalDecision: without a NaN missing type NaN becomes 0.0, which Zero sends to the default side.
            cols["nan_left"].append(default_left if missing else 0.0 <= threshold)
            words = _bitset(str(nd["threshold"])) if categorical else []
            cols["cat_off"].append(len(cat_bits))
            cols["cat_len"].append(len(words))
            cat_bits.extend(words)
            if not internal:
                # Tree::ExpectedValue: the count-weighted mean of the leaves (the leaf itself for a stump).
                expected += float(nd["leaf_value"]) * (cover[i] / cover[0] if n > 1 else 1.0)
        cols["zero"].extend(zero.tolist())
        cols["prev"].extend(prev.tolist())

    def arr(name: str, dtype: Any) -> np.ndarray:
        return np.asarray(cols[name], dtype=dtype)

    sizes = np.diff(node_off)
    arrays = (
        np.asarray(node_off, dtype=np.int64), np.asarray(tab_off, dtype=np.int64), np.asarray(ks, dtype=np.int64),
        arr("left", np.int64), arr("right", np.int64), arr("feature", np.int64), arr("threshold", np.float64),
        arr("categorical", np.bool_), arr("zero_missing", np.bool_), arr("default_left", np.bool_),
        arr("nan_left", np.bool_), arr("cat_off", np.int64), arr("cat_len", np.int64),
        np.asarray(cat_bits, dtype=np.uint32), arr("value", np.float64), arr("zero", np.float64),
        arr("prev", np.int64), np.ascontiguousarray(np.concatenate(tables, axis=1) if tables else np.zeros((6, 0))),
        int(sizes.max()) if len(sizes) else 1, int(max(ks)) if ks else 1,
    )
    return arrays, expected, max_path


@njit(cache=True, inline="always")
def _split(XT, xo, G, B, categorical, zero_missing, default_left, nan_left, threshold, cat_off, cat_len, cat_bits):
    """``G[r]`` = row r goes left at this split, by Tree::CategoricalDecision / Tree::NumericalDecision."""
    if categorical:
        for r in range(B):
            x = XT[xo + r]
            # static_cast<int> truncates; NaN and anything below 0 after truncation go right, and so
            # does anything past INT_MAX (the cast yields INT_MIN on x86).
            go = False
            if x > -1.0 and x < 2147483648.0:
                v = int(x)
                if v >> 5 < cat_len:
                    go = ((cat_bits[cat_off + (v >> 5)] >> np.uint32(v & 31)) & np.uint32(1)) == np.uint32(1)
            G[r] = go
    else:
        for r in range(B):
            x = XT[xo + r]
            go = x <= threshold
            if zero_missing and x == 0.0:
                go = default_left
            G[r] = nan_left if np.isnan(x) else go


@njit(cache=True)
def _explain_block(X, phi, start, stop, node_off, tab_off, ks, left, right, feature, threshold, categorical,
                   zero_missing, default_left, nan_left, cat_off, cat_len, cat_bits, value, zero, prev, tab,
                   max_nodes, max_k):
    """Add every tree's SHAP values for rows ``start:stop`` to ``phi`` (expected value not included).

    Every per-node quantity is a vector over the block's rows, the innermost loop everywhere. The
    scratch arrays are flat and indexed with unsigned integers: numba then skips its negative-index
    wraparound, and LLVM vectorizes the row loops.
    """
    B = np.uint64(stop - start)
    n_features = phi.shape[1] - 1
    XT = np.empty(n_features * B)  # [feature, row]
    for r in range(B):
        for j in range(n_features):
            x = X[start + np.int64(r), j]
            # LightGBM's predictor keeps only |x| > kZeroThreshold (or NaN) of a dense row; the rest is 0.
            XT[np.uint64(j) * B + r] = 0.0 if -ZERO_THRESHOLD <= x <= ZERO_THRESHOLD else x
    G = np.empty(B, dtype=np.bool_)
    # [edge, row]: the edge's combined one fraction; the extra last row stands in for "no previous edge".
    O = np.empty((max_nodes + 1) * B, dtype=np.bool_)
    none = np.uint64(max_nodes) * B
    for r in range(B):
        O[none + r] = True
    R = np.empty(max_nodes * max_k * B)  # [node, k, row]: Π a_j(t_k) going down, subtree sums going up
    acc = np.empty(B)
    out = np.zeros(n_features * B)  # [feature, row]
    for tree in range(ks.shape[0]):
        base = node_off[tree]
        n = node_off[tree + 1] - base
        if n == 1:
            continue
        K = ks[tree]
        tb = tab_off[tree]
        for r in range(np.uint64(K) * B):
            R[r] = 1.0
        # Down: a child's vector is its parent's times the edge's factor (and the leaf value at a
        # leaf); for a feature seen higher up, the earlier factor is divided out and replaced by
        # the combined one.
        for p in range(n):
            g = base + p
            lc, rc = left[g], right[g]
            if lc < 0:
                continue
            _split(XT, np.uint64(feature[g]) * B, G, B, categorical[g], zero_missing[g], default_left[g],
                   nan_left[g], threshold[g], cat_off[g], cat_len[g], cat_bits)
            for side in range(2):
                c = lc if side == 0 else rc
                oc = np.uint64(c) * B
                op = none if prev[base + c] < 0 else np.uint64(prev[base + c]) * B
                goes = side == 0
                for r in range(B):
                    O[oc + r] = (G[r] == goes) & O[op + r]
                v = value[base + c]
                for k in range(K):
                    e = tb + c * K + k
                    a0, a1, q0, q1 = tab[A0, e], tab[A1, e], tab[PINV0, e], tab[PINV1, e]
                    rp, rn = np.uint64(p * K + k) * B, np.uint64(c * K + k) * B
                    for r in range(B):
                        R[rn + r] = R[rp + r] * (a1 if O[oc + r] else a0) * (q1 if O[op + r] else q0) * v
        # Up: a split's vector becomes the sum of its children's. Each edge credits its feature with
        # Σ_k S_k·(o − z)·w_k/a_k and takes the same amount, weighted as the previous split on that
        # feature, out of that split's share (those leaves are credited at the deeper split instead).
        for p in range(n - 1, -1, -1):
            g = base + p
            lc, rc = left[g], right[g]
            if lc < 0:
                continue
            ol, orr = np.uint64(lc) * B, np.uint64(rc) * B
            for r in range(B):
                acc[r] = 0.0
            for k in range(K):
                el, er = tb + lc * K + k, tb + rc * K + k
                vl0, vl1, vr0, vr1 = tab[V0, el], tab[V1, el], tab[V0, er], tab[V1, er]
                rp = np.uint64(p * K + k) * B
                rl, rr = np.uint64(lc * K + k) * B, np.uint64(rc * K + k) * B
                for r in range(B):
                    sl, sr = R[rl + r], R[rr + r]
                    acc[r] += sl * (vl1 if O[ol + r] else vl0) + sr * (vr1 if O[orr + r] else vr0)
                    R[rp + r] = sl + sr
            for c in (lc, rc):
                pv = prev[base + c]
                if pv < 0:
                    continue
                op = np.uint64(pv) * B
                for k in range(K):
                    e = tb + pv * K + k
                    v0, v1 = tab[V0, e], tab[V1, e]
                    rn = np.uint64(c * K + k) * B
                    for r in range(B):
                        acc[r] -= R[rn + r] * (v1 if O[op + r] else v0)
            of = np.uint64(feature[g]) * B
            for r in range(B):
                out[of + r] += acc[r]
    for r in range(B):
        for j in range(n_features):
            phi[start + np.int64(r), j] += out[np.uint64(j) * B + r]


@njit(cache=True, parallel=True)
def _explain(X, phi, block_rows, node_off, tab_off, ks, left, right, feature, threshold, categorical, zero_missing,
             default_left, nan_left, cat_off, cat_len, cat_bits, value, zero, prev, tab, max_nodes, max_k):
    n_rows = X.shape[0]
    n_blocks = (n_rows + block_rows - 1) // block_rows
    for b in prange(n_blocks):
        _explain_block(X, phi, b * block_rows, min(n_rows, (b + 1) * block_rows), node_off, tab_off, ks, left,
                       right, feature, threshold, categorical, zero_missing, default_left, nan_left, cat_off,
                       cat_len, cat_bits, value, zero, prev, tab, max_nodes, max_k)
