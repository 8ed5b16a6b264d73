import numpy as np
import pandas as pd
import pytest

from karte_assets.tiers import assign_tiers


def test_top_share_gets_a_next_share_gets_b_and_ties_break_by_user_id():
    users = pd.Series([f"u{i:02d}" for i in range(20)])
    scores = np.r_[np.linspace(1, 0.1, 10), np.full(10, 0.05)]
    table = assign_tiers(users, scores, tier_a_share=0.1, tier_b_share=0.25)
    assert table["coupon_tier"].value_counts().to_dict() == {"A": 2, "B": 5, "none": 13}
    assert table["user_id"].iloc[:2].tolist() == ["u00", "u01"]
    assert table["score_rank"].tolist() == list(range(1, 21))
    assert table["score_decile"].tolist() == [d for d in range(1, 11) for _ in range(2)]
    tied = table[table["loyal_score"] == 0.05]["user_id"].tolist()
    assert tied == sorted(tied)


def test_the_same_scores_always_give_the_same_tiers_whatever_the_input_order():
    users = pd.Series(list("abcdefgh"))
    scores = np.array([0.5, 0.5, 0.9, 0.1, 0.5, 0.3, 0.5, 0.7])
    order = np.random.default_rng(0).permutation(8)
    first = assign_tiers(users, scores, 0.25, 0.25)
    second = assign_tiers(users.iloc[order].reset_index(drop=True), scores[order], 0.25, 0.25)
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize("a, b", [(0.7, 0.4), (-0.1, 0.2), (0.2, 1.5)])
def test_impossible_shares_are_refused(a, b):
    with pytest.raises(ValueError, match="tier shares"):
        assign_tiers(pd.Series(["u"]), np.array([0.5]), a, b)


def test_an_empty_audience_gives_an_empty_table():
    assert assign_tiers(pd.Series([], dtype=str), np.array([]), 0.1, 0.2).empty
