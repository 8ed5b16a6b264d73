"""The synthetic shop's products: added to the purchases without changing any event."""

import datetime as dt

import numpy as np
import pandas as pd

from karte_assets.synthetic import SyntheticWorld, generate_day, product_weights, promoted, with_products

WORLD = SyntheticWorld(start=dt.date(2026, 6, 1), new_users_per_day=80.0)
DAY = dt.date(2026, 6, 20)


def test_products_ride_on_the_purchases_and_leave_the_events_as_they_were():
    events = generate_day(WORLD, DAY, "Asia/Tokyo")
    with_them = with_products(WORLD, DAY, events)
    pd.testing.assert_frame_equal(with_them[events.columns], events)
    bought = with_them["event_name"] == "purchase"
    assert bought.any()
    assert with_them.loc[bought, "product_id"].str.fullmatch(r"p\d{3}").all()
    assert (with_them.loc[bought, "quantity"] >= 1).all()
    assert (
        with_them.loc[~bought, "product_id"].isna().all() and with_them.loc[~bought, "quantity"].isna().all()
    )
    pd.testing.assert_frame_equal(with_products(WORLD, DAY, events), with_them)  # deterministic


def test_a_promotion_multiplies_a_products_weight_and_lasts_3_to_7_days():
    days = [WORLD.start + dt.timedelta(days=d) for d in range(28)]
    on = np.array([promoted(WORLD, d) for d in days])
    running = on.sum(axis=0)
    assert set(running[running > 0]) <= set(range(3, 8))
    # A product on promotion on a day and not a week later (the same weekday): the trend of one
    # week is all that differs besides the promotion.
    day = next(d for d in days if (promoted(WORLD, d) & ~promoted(WORLD, d + dt.timedelta(days=7))).any())
    product = int(np.flatnonzero(promoted(WORLD, day) & ~promoted(WORLD, day + dt.timedelta(days=7)))[0])
    ratio = product_weights(WORLD, day)[product] / product_weights(WORLD, day + dt.timedelta(days=7))[product]
    assert 3.0 < ratio < 5.0  # promotion_lift 4


def test_weekly_profiles_move_weekend_and_weekday_sellers_apart():
    saturday, tuesday = dt.date(2026, 6, 6), dt.date(2026, 6, 9)
    ratio = product_weights(WORLD, saturday) / product_weights(WORLD, tuesday)
    no_promotion = ~promoted(WORLD, saturday) & ~promoted(WORLD, tuesday)
    assert (ratio[no_promotion] > 1.05).any() and (ratio[no_promotion] < 0.95).any()
