"""Anomaly scores of a day's users, higher = more anomalous.

Unsupervised (no labels needed): scikit-learn's Isolation Forest (Liu, Ting and Zhou 2008) and
ECOD (Li et al. 2022, "ECOD: Unsupervised Outlier Detection Using Empirical Cumulative Distribution
Functions"), written here in NumPy: PyOD's ECOD brings numba with it, and the evaluation checks
this one against PyOD's (evaluation/anomaly.py). Supervised: LightGBM trained on a client's known
cheaters, each user scored by a model that never saw them (out-of-fold).

LightGBM and scikit-learn are imported where they are used: the code location imports this module
with the anomaly assets, and the two (with SciPy) cost seconds of its load (BENCHMARKS.md).
"""

from __future__ import annotations

import os

import numpy as np

ISOLATION_FOREST, ECOD, LIGHTGBM = "isolation_forest", "ecod", "lightgbm"
UNSUPERVISED = (ISOLATION_FOREST, ECOD)


def tail_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per user and feature, -log of the empirical left and right tail probabilities.

    ``left[i, j] = -log(share of users with feature j <= x_ij)``, ``right`` likewise with >=:
    a value few users reach scores high. Sorting each column once makes it O(n log n).
    """
    n = len(matrix)
    left, right = np.empty_like(matrix), np.empty_like(matrix)
    for j in range(matrix.shape[1]):
        column = matrix[:, j]
        ordered = np.sort(column)
        left[:, j] = np.searchsorted(ordered, column, side="right")
        right[:, j] = n - np.searchsorted(ordered, column, side="left")
    return -np.log(left / n), -np.log(right / n)


def ecod_scores(matrix: np.ndarray) -> np.ndarray:
    """ECOD as PyOD computes it (``pyod.models.ecod.ECOD.decision_function``): per feature the larger
    tail, both tails where the feature is unskewed, summed over the features."""
    left, right = tail_scores(matrix)
    centred = matrix - matrix.mean(axis=0)
    spread = matrix.std(axis=0)
    skew = np.divide((centred**3).mean(axis=0), spread**3, out=np.zeros(matrix.shape[1]), where=spread > 0)
    return np.where(skew == 0, left + right, np.maximum(left, right)).sum(axis=1)


def threads_for(rows: int) -> int:
    """One thread per 100k users, up to the cores: on small sets threads wait more than they work
    (LightGBM on 800 users of a loaded 2-core machine: 301 s with every core, 4.8 s with one)."""
    return max(1, min(os.cpu_count() or 1, rows // 100_000))


def isolation_forest_scores(matrix: np.ndarray, seed: int, n_estimators: int, max_samples: int) -> np.ndarray:
    """The paper's score 2^(-E[h(x)] / c(n)) in (0, 1]: near 1 is isolated in few splits."""
    from joblib import parallel_backend
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(max_samples, len(matrix)), random_state=seed
    )
    forest.fit(matrix)
    # score_samples walks the trees in threads only under a joblib backend (sklearn's docstring).
    with parallel_backend("threading", n_jobs=threads_for(len(matrix))):
        return -forest.score_samples(matrix)


def unsupervised_scores(
    name: str, matrix: np.ndarray, seed: int, n_estimators: int, max_samples: int
) -> np.ndarray:
    if name == ISOLATION_FOREST:
        return isolation_forest_scores(matrix, seed, n_estimators, max_samples)
    if name == ECOD:
        return ecod_scores(matrix)
    raise ValueError(f"unknown unsupervised detector {name!r}; choose from {UNSUPERVISED}")


def supervised_scores(matrix: np.ndarray, labels: np.ndarray, seed: int = 0, folds: int = 5) -> np.ndarray:
    """Out-of-fold LightGBM probabilities of being a known cheater: every user is scored by a model
    trained on the other folds, so a labelled user's score is not a memory of its own label."""
    import lightgbm as lgb

    positives = int(labels.sum())
    if positives < folds or positives > len(labels) - folds:
        raise ValueError(
            f"{positives} labelled users of {len(labels)}: too few of one class for {folds} folds"
        )
    rng = np.random.default_rng(seed)
    # Stratified: each fold gets its share of the positives.
    fold = np.empty(len(labels), dtype=int)
    for value in (0, 1):
        members = np.flatnonzero(labels == value)
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    scores = np.empty(len(labels))
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "is_unbalance": True,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads_for(len(labels)),
        "verbose": -1,
    }
    for k in range(folds):
        train = fold != k
        booster = lgb.train(params, lgb.Dataset(matrix[train], labels[train]), num_boost_round=100)
        scores[~train] = booster.predict(matrix[~train])
    return scores
