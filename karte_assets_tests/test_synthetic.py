"""Tests of the synthetic event generator: contract (columns, time window, determinism) and behaviour."""

import datetime
import functools

import pandas as pd
import pytest

from karte_assets.synthetic import COLUMNS, SyntheticWorld, generate_day

START = datetime.date(2024, 1, 1)  # a Monday
WORLD = SyntheticWorld(start=START)


@functools.cache
def day_events(index: int, timezone: str = "Asia/Tokyo") -> pd.DataFrame:
    return generate_day(WORLD, START + datetime.timedelta(index), timezone)


def assert_identical(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b)
    assert (pd.util.hash_pandas_object(a).to_numpy() == pd.util.hash_pandas_object(b).to_numpy()).all()


def test_columns_and_dtypes():
    df = day_events(10)
    assert COLUMNS == ["user_id", "event_ts", "event_name", "value", "session_id", "item_id"]
    assert list(df.columns) == COLUMNS
    assert df["event_ts"].dtype == "datetime64[us]"
    assert df["value"].dtype == "float64"
    for col in ["user_id", "event_name", "session_id", "item_id"]:
        assert df[col].map(type).eq(str).all(), col
    assert df["user_id"].str.fullmatch(r"u\d{6}-\d{6}").all()
    assert set(df["event_name"]) == {"view", "click", "cart", "purchase"}
    # A session belongs to one user, and its id embeds that user's id digits.
    assert (df.groupby("session_id")["user_id"].nunique() == 1).all()
    assert (df["session_id"].str[1:14] == df["user_id"].str[1:]).all()


def test_sorted_by_ts_then_user():
    df = day_events(10)
    keys = list(zip(df["event_ts"], df["user_id"], strict=True))
    assert keys == sorted(keys)


def test_same_call_is_identical():
    day = START + datetime.timedelta(20)
    assert_identical(generate_day(WORLD, day, "Asia/Tokyo"), generate_day(WORLD, day, "Asia/Tokyo"))


def test_day_alone_equals_day_after_other_days():
    day = START + datetime.timedelta(30)
    alone = generate_day(WORLD, day, "Asia/Tokyo")
    for other in [29, 45, 0, 31]:
        generate_day(WORLD, START + datetime.timedelta(other), "Asia/Tokyo")
    assert_identical(alone, generate_day(WORLD, day, "Asia/Tokyo"))


def test_seed_changes_the_data():
    day = START + datetime.timedelta(5)
    other = generate_day(SyntheticWorld(start=START, seed=8), day, "UTC")
    assert not generate_day(WORLD, day, "UTC").equals(other)


@pytest.mark.parametrize(
    "timezone, day",
    [
        ("Asia/Tokyo", START + datetime.timedelta(12)),
        ("UTC", START + datetime.timedelta(12)),
        ("America/New_York", datetime.date(2024, 3, 10)),  # 23-hour day (DST starts)
        ("America/New_York", datetime.date(2024, 11, 3)),  # 25-hour day (DST ends)
    ],
)
def test_event_ts_inside_local_day_in_utc(timezone, day):
    df = generate_day(SyntheticWorld(start=day - datetime.timedelta(10)), day, timezone)
    lo, hi = (
        pd.Timestamp(d).tz_localize(timezone).tz_convert("UTC").tz_localize(None)
        for d in (day, day + datetime.timedelta(1))
    )
    assert len(df) > 0
    assert df["event_ts"].min() >= lo and df["event_ts"].max() < hi
    # The whole local day is used, including the extra hour of a 25-hour day.
    half_hour = pd.Timedelta(minutes=30)
    assert df["event_ts"].min() < lo + half_hour and df["event_ts"].max() > hi - half_hour
    if timezone == "Asia/Tokyo":
        assert lo == pd.Timestamp(day) - pd.Timedelta(hours=9)


def test_local_hourly_profile_quiet_nights_busy_evenings():
    hours = day_events(40)["event_ts"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo").dt.hour
    counts = hours.value_counts()
    assert counts[[2, 3, 4]].sum() * 3 < counts[[19, 20, 21]].sum()


def test_empty_before_start():
    df = generate_day(WORLD, START - datetime.timedelta(1), "Asia/Tokyo")
    assert df.empty
    assert list(df.columns) == COLUMNS
    assert df.dtypes.to_dict() == day_events(0).dtypes.to_dict()


def test_users_persist_and_churn():
    users = {i: set(day_events(i)["user_id"]) for i in [*range(7), *range(49, 63)]}
    for i in [*range(6), *range(49, 62)]:
        assert users[i] & users[i + 1], f"no returning users between day {i} and {i + 1}"
    week1 = set().union(*(users[i] for i in range(7)))
    weeks8_9 = set().union(*(users[i] for i in range(49, 63)))
    assert week1 & weeks8_9, "nobody from week 1 is still around in weeks 8-9"
    assert week1 - weeks8_9, "nobody from week 1 churned"


def test_weekends_busier_than_weekdays():
    sizes = pd.Series({START + datetime.timedelta(i): len(day_events(i)) for i in range(35, 63)})
    weekend = sizes.index.map(lambda d: d.weekday() >= 5)
    assert sizes[weekend].mean() > 1.1 * sizes[~weekend].mean()


def test_purchase_values_positive_and_others_zero():
    df = day_events(40)
    purchases = df["event_name"] == "purchase"
    assert purchases.any()
    assert (df.loc[purchases, "value"] > 0).all()
    assert (df.loc[~purchases, "value"] == 0.0).all()
    assert 1_000 < df.loc[purchases, "value"].median() < 10_000


def test_funnel_counts_decrease():
    counts = day_events(40)["event_name"].value_counts()
    assert counts["view"] > counts["click"] > counts["cart"] > counts["purchase"] > 0
