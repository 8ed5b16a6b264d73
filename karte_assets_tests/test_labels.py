"""Labels and features proven by hand: a tiny history whose every expected value is written out.

Snapshot s = 2026-06-04, horizon H = 3 days: a user is labelled 1 at s if they purchased in
(s, s + H] = 06-05 .. 06-07, local days in Asia/Tokyo (events below are at 03:00 UTC = 12:00 local).
"""

import pandas as pd

from karte_assets_tests.graph import FIRST_DAY, config_with, days

S, LAST = pd.Timestamp("2026-06-04").date(), pd.Timestamp("2026-06-08").date()
UPSTREAM = ["raw_events", "user_daily_activity", "user_profile", "user_features", "loyalty_training_set"]
HISTORY = [
    # user, day, event, value
    ("on_s", "2026-06-02", "view", 0),
    ("on_s", "2026-06-04", "purchase", 1000),  # on s itself: before the window, label 0
    ("on_s_plus_h", "2026-06-02", "view", 0),
    ("on_s_plus_h", "2026-06-03", "cart", 0),
    ("on_s_plus_h", "2026-06-07", "purchase", 2000),  # on s + H: the last day of the window, label 1
    ("after", "2026-06-01", "view", 0),
    ("after", "2026-06-08", "purchase", 3000),  # on s + H + 1: after the window, label 0
    ("newcomer", "2026-06-05", "view", 0),  # first seen after s: not in snapshot s
    ("newcomer", "2026-06-06", "purchase", 500),
    # Gaps between purchase days: 1 and 2 days, the last of them on s (label 0, as on_s).
    ("rhythm", "2026-06-01", "purchase", 100),
    ("rhythm", "2026-06-02", "purchase", 100),
    ("rhythm", "2026-06-02", "purchase", 50),  # a second order on one day: one purchase day
    ("rhythm", "2026-06-04", "purchase", 100),
    # One gap of 1 day, then silent for 2 days: twice the mean gap.
    ("lapsed", "2026-06-01", "purchase", 100),
    ("lapsed", "2026-06-02", "purchase", 100),
]
# Every user of snapshot s with the label and features written out by hand (None: no value).
EXPECTED_AT_S = pd.DataFrame(
    [
        # user, label, tenure_days, days_since_last_seen, days_since_last_purchase, lifetime_purchases,
        # lifetime_revenue, active_days_7d, views_7d, carts_7d, purchases_7d
        ("after", 0, 3, 3, None, 0, 0.0, 1, 1, 0, 0),
        ("lapsed", 0, 3, 2, 2, 2, 200.0, 2, 0, 0, 2),
        ("on_s", 0, 2, 0, 0, 1, 1000.0, 2, 1, 0, 1),
        ("on_s_plus_h", 1, 2, 1, None, 0, 0.0, 2, 1, 1, 0),
        ("rhythm", 0, 3, 0, 0, 4, 350.0, 3, 0, 0, 4),
    ],
    columns=[
        "user_id",
        "label",
        "tenure_days",
        "days_since_last_seen",
        "days_since_last_purchase",
        "lifetime_purchases",
        "lifetime_revenue",
        "active_days_7d",
        "views_7d",
        "carts_7d",
        "purchases_7d",
    ],
)
# The same users' purchase-gap features: purchase days, days since the first purchase, first to last
# purchase day, mean and spread of the gaps, the last gap, days since the last purchase over the mean
# gap, purchase days per day since the first purchase.
GAPS_AT_S = pd.DataFrame(
    [
        ("after", 0, None, None, None, None, None, None, None),
        ("lapsed", 2, 3, 1, 1.0, 0.0, 1, 2.0, 2 / 4),
        ("on_s", 1, 0, 0, None, None, None, None, 1 / 1),
        ("on_s_plus_h", 0, None, None, None, None, None, None, None),
        # gaps 1 and 2: mean 1.5, variance (1 + 4) / 2 - 1.5 ** 2 = 0.25
        ("rhythm", 3, 3, 3, 1.5, 0.5, 2, 0.0, 3 / 4),
    ],
    columns=[
        "user_id",
        "purchase_days",
        "days_since_first_purchase",
        "purchase_span_days",
        "mean_purchase_gap_days",
        "purchase_gap_std_days",
        "last_purchase_gap_days",
        "days_since_last_purchase_per_gap",
        "purchase_day_rate",
    ],
)


def test_a_hand_built_history_gives_the_labels_and_features_written_out(graph, tmp_path):
    path = tmp_path / "history.csv"
    pd.DataFrame(
        [(user, f"{day} 03:00:00", event, value) for user, day, event, value in HISTORY],
        columns=["user_id", "event_ts", "event_name", "value"],
    ).to_csv(path, index=False)
    config = config_with(
        raw_events={"source": str(path)},
        loyalty_training_set={
            "horizon_days": 3,
            "snapshot_every_days": 1,
            "min_history_days": 0,
            "max_snapshots": 4,
        },
    )
    assert graph.materialize(FIRST_DAY, LAST, run_config=config, selection=UPSTREAM).success

    training = graph.table("loyalty_training_set", LAST)
    # Built on 06-08 with H = 3: snapshots 06-02 .. 06-05, so no label reads past 06-08.
    assert sorted(set(training["snapshot_date"].dt.date)) == days(
        pd.Timestamp("2026-06-02").date(), S.replace(day=5)
    )
    at_s = training[training["snapshot_date"].dt.date == S][["user_id", "label"]]
    features = graph.table("user_features", S)
    got = at_s.merge(features, on="user_id")[EXPECTED_AT_S.columns].sort_values("user_id", ignore_index=True)
    pd.testing.assert_frame_equal(got, EXPECTED_AT_S, check_dtype=False)
    gaps = features[GAPS_AT_S.columns].sort_values("user_id", ignore_index=True)
    pd.testing.assert_frame_equal(gaps, GAPS_AT_S.astype(gaps.dtypes.to_dict()), check_dtype=False)
    # A day later the window is (06-05, 06-08]: the purchase on 06-08 now counts, the newcomer is in.
    at_next = training[training["snapshot_date"].dt.date == S.replace(day=5)].set_index("user_id")["label"]
    assert at_next.to_dict() == {
        "after": 1,
        "lapsed": 0,
        "newcomer": 1,
        "on_s": 0,
        "on_s_plus_h": 1,
        "rhythm": 0,
    }
