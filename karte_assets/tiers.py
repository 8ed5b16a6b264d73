"""Coupon tiers: rank users by loyalty score, give tier A to the top share and B to the next.

The ranking itself runs in the warehouse (``sql/loyalty_scores.sql``); this module turns the tier
shares into the last rank of each tier for an audience of a given size.
"""

from __future__ import annotations

import math

NO_COUPON = "none"


def tier_ranks(audience: int, tier_a_share: float, tier_b_share: float) -> tuple[int, int]:
    """The last rank of tier A and of tier B among ``audience`` users ranked 1 (most loyal) on:
    A gets the top ``floor(audience * a)``, A and B together ``floor(audience * (a + b))``."""
    if not 0 <= tier_a_share <= 1 or not 0 <= tier_b_share <= 1 or tier_a_share + tier_b_share > 1:
        raise ValueError(
            f"tier shares A={tier_a_share} and B={tier_b_share} must be in [0, 1] and add up to at most 1"
        )
    return math.floor(audience * tier_a_share), math.floor(audience * (tier_a_share + tier_b_share))
