"""The detector's view of ``user_behaviour_features``: which columns, on which scale."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The columns of user_behaviour_features the detectors read. Left out: gaps (events - 1) and
# history_days, which says how long a user has been around, not how they behave.
FEATURES = (
    "events",
    "events_per_active_hour",
    "peak_events_per_minute",
    "active_hours",
    "mean_gap_seconds",
    "min_gap_seconds",
    "gap_cv",
    "modal_gap_count",
    "modal_gap_share",
    "view_share",
    "click_share",
    "cart_share",
    "purchase_share",
    "sessions",
    "events_per_session",
    "mean_session_seconds",
    "max_session_events",
    "purchases",
    "revenue",
    "repeated_value_share",
    "events_vs_history",
    "purchases_vs_history",
)
# Counts, durations, money and ratios are heavy-tailed: on a log scale a tree's random split lands
# as often among the crowd's values as in the tail. Shares and gap_cv are already bounded.
_BOUNDED = frozenset(
    {
        "gap_cv",
        "modal_gap_share",
        "view_share",
        "click_share",
        "cart_share",
        "purchase_share",
        "repeated_value_share",
    }
)


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``FEATURES`` of ``frame`` as a float matrix, unbounded ones as log(1 + x).

    A missing column or a null value is an error naming it: the SQL gives every feature a value.
    """
    missing = [name for name in FEATURES if name not in frame.columns]
    if missing:
        raise KeyError(f"user_behaviour_features rows lack the columns {missing}")
    matrix = frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(matrix)
    if bad.any():
        columns = sorted({FEATURES[j] for j in np.flatnonzero(bad.any(axis=0))})
        raise ValueError(f"{int(bad.any(axis=1).sum())} users have null or infinite features: {columns}")
    unbounded = [j for j, name in enumerate(FEATURES) if name not in _BOUNDED]
    matrix[:, unbounded] = np.log1p(np.maximum(matrix[:, unbounded], 0.0))
    return matrix
