"""LightGBM's ``predict`` of a float64 matrix, reproduced step for step in compiled code (numba).

The scores are LightGBM's by construction, not by sampling: every step below follows LightGBM's C++
(github.com/microsoft/LightGBM at bae0b7b, the source of the 4.x releases; file:line cited) with the
same IEEE double operations in the same order. A model with anything this walker does not implement
(categorical splits, linear trees, several trees per iteration, random forest averaging, another
objective) is refused with the reason, and the caller uses LightGBM's predict.

1. The row: ``RowPairFunctionFromDenseMatrix`` (src/c_api.cpp:2877-2890) keeps a value only if
   ``fabs(x) > kZeroThreshold || isnan(x)``; the predictor's buffer is zero elsewhere
   (src/application/predictor.hpp:259-265), so values within kZeroThreshold of 0 read as 0.
   ``kZeroThreshold = 1e-35f`` (include/LightGBM/meta.h:56): a float literal, widened to double.
2. One tree: ``Tree::GetLeaf`` / ``NumericalDecision`` (include/LightGBM/tree.h:337-355, 700-712):
   NaN reads as 0 unless the node's missing type is NaN; a missing value (Zero: ``IsZero``,
   tree.h:254-256; NaN: NaN) goes to the default side (decision_type bit 2); otherwise
   ``x <= threshold`` goes left. Missing type is ``(decision_type >> 2) & 3`` (tree.h:274-276) of
   ``enum MissingType {None, Zero, NaN}`` (include/LightGBM/bin.h:27-31). A one-leaf tree is its
   leaf's value (tree.h:607-614).
   Walked here without branches: after step 1 a value is NaN, exactly 0 (what ``IsZero`` holds,
   the complement of step 1's test) or neither, so each node's decision is ``x > threshold`` for
   the last and a fixed side, worked out from the node's missing type once, for 0 and for NaN
   (``_special_sides``). Leaves point to themselves, so a block of rows walks each tree in
   lock-step for the tree's depth (independent rows overlap in the CPU; no mispredicted branches).
3. The sum: ``GBDT::PredictRaw`` (src/boosting/gbdt_prediction.cpp:15-34) starts at 0.0 and adds
   the trees' outputs in model order, in double.
4. The probability: ``BinaryLogloss::ConvertOutput`` (src/objective/binary_objective.hpp:175-177),
   ``1.0 / (1.0 + exp(-sigmoid * raw))`` with libm's ``exp`` (the wheel's lib_lightgbm.so imports
   glibc's ``exp``; numba calls the same libm function for ``math.exp``).

The model's numbers come from its text (``Booster.model_to_string``): thresholds and leaf values
are printed with ``{:.17g}`` (include/LightGBM/utils/common.h:1231-1235, tree.cpp's
``Tree::ToString``), which round-trips a double, and read back by LightGBM with a correctly rounded
parser (``AtofPrecise``, common.h:1126-1137) as by Python's ``float``.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

if "KARTE_HOME" in os.environ:
    # numba caches compiled code next to this module unless told otherwise; in an image that
    # directory may be read-only, $KARTE_HOME is the project's writable place.
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.environ["KARTE_HOME"], "numba"))
# With Intel's SVML installed numba may vectorise math.exp into SVML's, which is not libm's exp
# (step 4): keep it off, and refuse to walk if it is on anyway (numba imported earlier without this).
os.environ.setdefault("NUMBA_DISABLE_INTEL_SVML", "1")

import numba
from numba import njit, prange

log = logging.getLogger(__name__)

# include/LightGBM/meta.h:56: ``const double kZeroThreshold = 1e-35f;``
ZERO_THRESHOLD = float(np.float32(1e-35))
# include/LightGBM/tree.h:20-21 and bin.h:27-31.
_DEFAULT_LEFT_MASK = 2
_MISSING_ZERO, _MISSING_NAN = 1, 2
# Rows walked together through one tree while it is in cache (each row's sum stays in tree order).
_BLOCK_ROWS = 128
# Bits of a node's ``special``: the right side for a value 0, for NaN.
_ZERO_RIGHT, _NAN_RIGHT = 1, 2


class Unsupported(Exception):
    """The model has something this walker does not implement; LightGBM must predict it."""


@dataclass(frozen=True)
class Forest:
    """A binary model's trees as one array of nodes, leaves included: a leaf's two children are
    itself, so walking a tree for its depth from its root ends on the row's leaf."""

    num_features: int
    sigmoid: float
    roots: np.ndarray  # uint32, one per tree, in model order
    depths: np.ndarray  # int32, per tree: the most splits from its root to a leaf
    feature: np.ndarray  # uint32, per node (0 for a leaf)
    threshold: np.ndarray  # float64, per node
    special: np.ndarray  # uint8, per node: _ZERO_RIGHT | _NAN_RIGHT
    children: np.ndarray  # uint32, per node: left at 2 * node, right at 2 * node + 1
    value: np.ndarray  # float64, per node: a leaf's output


def _special_sides(decision_type: int, threshold: float) -> int:
    """Where ``NumericalDecision`` (tree.h:337-355) sends 0 and NaN at this node, as _ZERO_RIGHT |
    _NAN_RIGHT. Missing type None: NaN reads 0, and 0 <= threshold goes left. Zero: both are
    missing (NaN reads 0, IsZero(0)) and go the default side. NaN: NaN goes the default side, 0 is
    compared."""
    missing_type = (decision_type >> 2) & 3  # tree.h:274-276
    default_right = not decision_type & _DEFAULT_LEFT_MASK
    zero_compared_right = not 0.0 <= threshold
    zero_right = default_right if missing_type == _MISSING_ZERO else zero_compared_right
    nan_right = default_right if missing_type in (_MISSING_ZERO, _MISSING_NAN) else zero_compared_right
    return _ZERO_RIGHT * zero_right | _NAN_RIGHT * nan_right


def _depth(left: list[int], right: list[int]) -> int:
    """The most splits from the root (split 0) to a leaf, level by level."""
    depth, level = 0, [0]
    while level:
        level = [child for node in level for child in (left[node], right[node]) if child >= 0]
        depth += 1
    return depth


def _sections(model: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The model text's header and trees, each as its ``key=value`` lines."""
    body = model.split("end of trees", 1)[0]
    header, *trees = [
        dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        for block in body.split("\nTree=")
    ]
    return header, trees


def load(booster: lgb.Booster) -> Forest:
    """The trees that ``booster.predict`` uses by default (its best iteration where it has one, as
    ``model_to_string``'s default); ``Unsupported`` with the reason otherwise."""
    if numba.config.USING_SVML:
        raise Unsupported("numba uses Intel SVML, whose exp is not libm's")
    header, trees = _sections(booster.model_to_string(num_iteration=booster.best_iteration))
    objective = header.get("objective", "").split()
    if header.get("num_tree_per_iteration") != "1" or header.get("num_class") != "1":
        raise Unsupported(
            f"{header.get('num_class')} classes, {header.get('num_tree_per_iteration')} trees per iteration"
        )
    if "average_output" in header:
        raise Unsupported("random forest (average_output): outputs are averaged")
    sigmoid = [part.split(":", 1)[1] for part in objective[1:] if part.startswith("sigmoid:")]
    # LightGBM reads the sigmoid with its own Atof (binary_objective.hpp:48), not correctly rounded
    # in general; for a whole number such as the default 1 it is exact, as Python's int.
    if objective[:1] != ["binary"] or len(sigmoid) != 1 or not sigmoid[0].isdigit():
        raise Unsupported(f"objective {' '.join(objective)!r} (only binary with a whole-number sigmoid)")
    roots, depths, nodes = [], [], []  # nodes: (feature, threshold, special, left, right, value)
    for number, tree in enumerate(trees):
        if tree.get("num_cat", "0") != "0":
            raise Unsupported(f"tree {number} has categorical splits")
        if tree.get("is_linear", "0") != "0":
            raise Unsupported(f"tree {number} is a linear tree")
        splits = int(tree["num_leaves"]) - 1
        base = len(nodes)
        # This tree's splits are nodes base .. base + splits - 1, then its leaves; LightGBM's child
        # index c >= 0 is split c, c < 0 is leaf ~c (tree.h:712).
        index = {c: base + (c if c >= 0 else splits + ~c) for c in range(-splits - 1, splits)}
        if splits:
            left, right = ([int(c) for c in tree[key].split()] for key in ("left_child", "right_child"))
            for feature, threshold, decision, lo, hi in zip(
                tree["split_feature"].split(),
                tree["threshold"].split(),
                tree["decision_type"].split(),
                left,
                right,
                strict=True,
            ):
                bound = float(threshold)
                nodes.append(
                    (int(feature), bound, _special_sides(int(decision), bound), index[lo], index[hi], 0.0)
                )
            depths.append(_depth(left, right))
        else:
            depths.append(0)  # tree.h:611-613: a one-leaf tree is its leaf
        for leaf, output in enumerate(tree["leaf_value"].split()):
            nodes.append((0, 0.0, 0, index[~leaf], index[~leaf], float(output)))
        roots.append(base)
    feature, threshold, special, left, right, value = zip(*nodes, strict=True) if nodes else ([],) * 6
    return Forest(
        num_features=booster.num_feature(),
        sigmoid=float(int(sigmoid[0])),
        roots=np.array(roots, dtype=np.uint32),
        depths=np.array(depths, dtype=np.int32),
        feature=np.array(feature, dtype=np.uint32),
        threshold=np.array(threshold, dtype=np.float64),
        special=np.array(special, dtype=np.uint8),
        children=np.column_stack([left, right]).astype(np.uint32).reshape(-1),
        value=np.array(value, dtype=np.float64),
    )


_forests: weakref.WeakKeyDictionary[lgb.Booster, Forest | None] = weakref.WeakKeyDictionary()


def forest(booster: lgb.Booster) -> Forest | None:
    """``booster``'s forest, read once per booster; None, with the reason logged once, where
    LightGBM must predict it."""
    if booster not in _forests:
        try:
            _forests[booster] = load(booster)
        except Unsupported as reason:
            log.warning("LightGBM's predict, not the compiled tree walker: %s", reason)
            _forests[booster] = None
    return _forests[booster]


@njit(parallel=True, cache=True)
def _raw_scores(
    matrix, roots, depths, feature, threshold, special, children, value, out
):  # pragma: no cover - compiled; tested through raw_scores
    rows, columns = matrix.shape
    for block in prange((rows + _BLOCK_ROWS - 1) // _BLOCK_ROWS):
        start = block * _BLOCK_ROWS
        count = min(rows, start + _BLOCK_ROWS) - start
        # Feature-major, and unsigned indices (numba adds a wrap-around test to each signed one).
        values = np.empty(columns * _BLOCK_ROWS)
        for r in range(count):
            for j in range(columns):
                x = matrix[start + r, j]
                # c_api.cpp:2883: kept if fabs(x) > kZeroThreshold or NaN, else the buffer's 0.
                values[j * _BLOCK_ROWS + r] = x if (math.fabs(x) > ZERO_THRESHOLD or math.isnan(x)) else 0.0
        sums = np.zeros(count)  # gbdt_prediction.cpp:18, memset to 0
        at = np.empty(_BLOCK_ROWS, np.uint32)
        for tree in range(roots.shape[0]):  # gbdt_prediction.cpp:20-24, model order
            at[:count] = roots[tree]
            for _ in range(depths[tree]):
                for r in range(count):
                    node = np.uint64(at[r])
                    x = values[np.uint64(feature[node]) * _BLOCK_ROWS + r]
                    sides = special[node]
                    # x > threshold (tree.h:349-353) unless x is 0 or NaN (never > anything).
                    right = (
                        (x > threshold[node]) * (x != 0.0)
                        + (sides & _ZERO_RIGHT) * (x == 0.0)
                        + (sides >> 1) * (x != x)
                    )
                    at[r] = children[np.uint64(2) * node + np.uint64(right)]
            for r in range(count):
                sums[r] += value[np.uint64(at[r])]
        out[start : start + count] = sums


@njit(parallel=True, cache=True)
def _sigmoid(raw, sigmoid, out):  # pragma: no cover - compiled; tested through probabilities
    for i in prange(raw.shape[0]):
        out[i] = 1.0 / (1.0 + math.exp(-sigmoid * raw[i]))  # binary_objective.hpp:176


def raw_scores(model: Forest, matrix: np.ndarray, threads: int) -> np.ndarray:
    """``booster.predict(matrix, raw_score=True)``, with ``threads`` threads."""
    if matrix.dtype != np.float64 or matrix.ndim != 2:
        # LightGBM casts other types to float32 first (basic.py, __pred_for_np2d): not this walker.
        raise TypeError(f"a 2-D float64 matrix is needed, not {matrix.ndim}-D {matrix.dtype}")
    if matrix.shape[1] != model.num_features:
        raise ValueError(f"the matrix has {matrix.shape[1]} columns, the model {model.num_features} features")
    out = np.empty(matrix.shape[0])
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _raw_scores(
        np.ascontiguousarray(matrix),
        model.roots,
        model.depths,
        model.feature,
        model.threshold,
        model.special,
        model.children,
        model.value,
        out,
    )
    return out


def probabilities(model: Forest, raw: np.ndarray) -> np.ndarray:
    """The binary objective's probabilities of raw scores."""
    out = np.empty_like(raw)
    _sigmoid(raw, model.sigmoid, out)
    return out


def predict(model: Forest, matrix: np.ndarray, threads: int) -> np.ndarray:
    """``booster.predict(matrix)``: the probabilities."""
    return probabilities(model, raw_scores(model, matrix, threads))
