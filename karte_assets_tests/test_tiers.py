"""Ranks, deciles and coupon tiers as sql/loyalty_scores.sql computes them in the warehouse (DuckDB)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.tiers import tier_ranks

DAY = dt.date(2026, 6, 1)


@pytest.fixture
def assign_tiers(tmp_path):
    """Raw scores in, the day's loyalty_scores out, through the warehouse SQL."""
    warehouse = DuckDBWarehouse(path=str(tmp_path / "karte.duckdb"))
    # The query can leave flagged users out, and names the day of the model that scored.
    warehouse.ensure_table("user_anomaly_scores_table")
    warehouse.ensure_table("loyalty_model_table")

    def assign(users: pd.Series, scores: np.ndarray, tier_a_share: float, tier_b_share: float):
        raw = pd.DataFrame({"user_id": users.to_numpy(), "loyal_score": np.asarray(scores, dtype=float)})
        warehouse.replace_partition_with_rows("loyalty_raw_scores", DAY, raw)
        # The tier ranks come from the shares in the SQL, per client (as tier_ranks computes them).
        params = {
            "tier_a_share": tier_a_share,
            "tier_b_share": tier_b_share,
            "baseline_version": "m",
            "exclude_flagged": False,
        }
        warehouse.replace_partition("loyalty_scores", DAY, "loyalty_scores", params)
        with warehouse.connect() as connection:
            return connection.execute(
                "SELECT * EXCLUDE (partition_date, client_id, model_version) FROM loyalty_scores ORDER BY score_rank"
            ).df()

    return assign


def test_top_share_gets_a_next_share_gets_b_and_ties_break_by_user_id(assign_tiers):
    users = pd.Series([f"u{i:02d}" for i in range(20)])
    scores = np.r_[np.linspace(1, 0.1, 10), np.full(10, 0.05)]
    table = assign_tiers(users, scores, tier_a_share=0.1, tier_b_share=0.25)
    assert table["coupon_tier"].value_counts().to_dict() == {"A": 2, "B": 5, "none": 13}
    assert table["user_id"].iloc[:2].tolist() == ["u00", "u01"]
    assert table["score_rank"].tolist() == list(range(1, 21))
    assert table["score_decile"].tolist() == [d for d in range(1, 11) for _ in range(2)]
    tied = table[table["loyal_score"] == 0.05]["user_id"].tolist()
    assert tied == sorted(tied)


def test_the_same_scores_always_give_the_same_tiers_whatever_the_input_order(assign_tiers):
    users = pd.Series(list("abcdefgh"))
    scores = np.array([0.5, 0.5, 0.9, 0.1, 0.5, 0.3, 0.5, 0.7])
    order = np.random.default_rng(0).permutation(8)
    first = assign_tiers(users, scores, 0.25, 0.25)
    second = assign_tiers(users.iloc[order].reset_index(drop=True), scores[order], 0.25, 0.25)
    pd.testing.assert_frame_equal(first, second)


def test_deciles_round_up_and_tiers_round_down_for_an_audience_that_does_not_divide():
    # 7 users: A = floor(0.7) = 0, A + B = floor(2.1) = 2; deciles ceil(rank * 10 / 7).
    assert tier_ranks(7, 0.1, 0.2) == (0, 2)
    assert tier_ranks(0, 0.1, 0.2) == (0, 0)


def test_uneven_audiences_get_ceiling_deciles(assign_tiers):
    table = assign_tiers(pd.Series(list("abcdefg")), np.linspace(0.9, 0.3, 7), 0.1, 0.2)
    assert table["score_decile"].tolist() == [2, 3, 5, 6, 8, 9, 10]
    assert table["coupon_tier"].tolist() == ["B", "B", "none", "none", "none", "none", "none"]


@pytest.mark.parametrize("a, b", [(0.7, 0.4), (-0.1, 0.2), (0.2, 1.5)])
def test_impossible_shares_are_refused(a, b):
    with pytest.raises(ValueError, match="tier shares"):
        tier_ranks(1, a, b)


def test_an_empty_audience_gives_an_empty_table(assign_tiers):
    assert assign_tiers(pd.Series([], dtype=str), np.array([]), 0.1, 0.2).empty
