"""Coupon tiers: rank users by loyalty score, give tier A to the top share and B to the next."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

NO_COUPON = "none"


def assign_tiers(
    user_ids: pd.Series, scores: np.ndarray, tier_a_share: float, tier_b_share: float
) -> pd.DataFrame:
    """One row per user: score, rank (1 = most loyal), decile (1 = top tenth) and coupon tier.

    Ties in score are broken by user id, so the same scores always give the same tiers.
    """
    if not 0 <= tier_a_share <= 1 or not 0 <= tier_b_share <= 1 or tier_a_share + tier_b_share > 1:
        raise ValueError(
            f"tier shares A={tier_a_share} and B={tier_b_share} must be in [0, 1] and add up to at most 1"
        )
    table = pd.DataFrame({"user_id": user_ids.to_numpy(), "loyal_score": np.asarray(scores, dtype=float)})
    table = table.sort_values(
        ["loyal_score", "user_id"], ascending=[False, True], kind="stable", ignore_index=True
    )
    audience = len(table)
    rank = np.arange(1, audience + 1)
    a_cut = math.floor(audience * tier_a_share)
    b_cut = math.floor(audience * (tier_a_share + tier_b_share))
    table["score_rank"] = rank
    table["score_decile"] = np.ceil(rank * 10 / max(audience, 1)).astype(int)
    table["coupon_tier"] = np.where(rank <= a_cut, "A", np.where(rank <= b_cut, "B", NO_COUPON))
    return table
