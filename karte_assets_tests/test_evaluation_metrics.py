"""The real-log evaluation's metrics (evaluation/run.py) on cases small enough to count by hand."""

import numpy as np

from evaluation.run import paired_bootstrap, roc_auc, top_decile_lift


def test_roc_auc_counts_the_pairs_a_buyer_wins_and_ties_as_half():
    # Buyers score 4 and 2, others 3 and 1: of the 4 buyer/other pairs the buyer ranks higher in 3.
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([4.0, 3.0, 2.0, 1.0])) == 0.75
    assert roc_auc(np.array([1, 0, 1, 0]), np.ones(4)) == 0.5


def test_top_decile_lift_is_the_top_tenths_buying_rate_over_everyones():
    labels = np.zeros(20, dtype=int)
    labels[[3, 7]] = 1  # 2 buyers in 20: 10 %
    scores = np.arange(20.0)
    scores[[3, 7]] = [100.0, 99.0]  # both in the top 2 (10 %): a rate of 100 %, lift 10
    assert top_decile_lift(labels, scores) == 10.0
    # All tied: the top tenth holds the tied rows' rate, the overall rate, lift 1.
    assert top_decile_lift(labels, np.ones(20)) == 1.0


def test_paired_bootstrap_is_zero_for_one_ranking_and_above_zero_for_a_clearly_better_one():
    rng = np.random.default_rng(0)
    labels = (rng.random(2_000) < 0.2).astype(int)
    noise = rng.random(2_000)
    # The same ranking against itself: every resample gives a difference of exactly 0.
    same = paired_bootstrap(labels, noise, noise.copy(), rounds=30)
    assert same == {"roc_auc": (0.0, 0.0), "top_decile_lift": (0.0, 0.0)}
    better = paired_bootstrap(labels, labels + noise, noise, rounds=30)
    assert better["roc_auc"][0] > 0.3 and better["top_decile_lift"][0] > 2
