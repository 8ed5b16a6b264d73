"""user_features' 7/28/90-day windows carried from the day before equal the windows summed afresh.

Each day runs the real user_profile and user_features SQL on DuckDB, one day after the other as a
backfill does; the expected windows are summed straight from user_daily_activity by pandas. With an
audience rule (audience_days), user_features holds only the users seen in the last N days, and their
windows are those of the rule off: a user left out and seen again is summed afresh, never restarted.
"""

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from dagster import Failure

from karte_assets.assets.common import require_previous_day
from karte_assets.clients import LoyaltyClient
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import load_settings
from karte_assets.sql import bind, duckdb_sql
from karte_assets_tests.graph import FIRST_DAY, failure_message

FIRST = dt.date(2026, 6, 1)
DAYS = 100  # past the 90-day window, so every window has had days leave it
WEEKS = 35  # the lean test's days: past the 7- and 28-day windows
WINDOWS = (7, 28, 90)
COUNTS = ["sessions", "views", "carts", "purchases"]
ACTIVITY = ["events", "sessions", "views", "clicks", "carts", "purchases", "revenue"]


def day(n: int) -> dt.date:
    return FIRST + dt.timedelta(days=n)


def hand_built() -> pd.DataFrame:
    """(client_id, user_id, day number, purchases, revenue): users who stay, go quiet and come back."""
    rows = []
    for n in range(DAYS):
        rows.append(("a", "steady", n, int(n % 3 == 0), 10.1 * (n % 3 == 0)))
        # The same user id at another client, with other values: never mixed with client a's.
        rows.append(("b", "steady", n, 2, 0.7))
    # Active on the first days, silent 30 days, back for a week, silent 50 days, back at the end.
    rows += [("a", "returns", n, 1, 3.3) for n in [*range(5), *range(35, 42), 92, 99]]
    rows.append(("a", "once", 0, 1, 99.99))  # leaves the 7-, 28- and 90-day windows on days 7, 28, 90
    rows += [("a", "late", n, 0, 0.0) for n in (60, 61, 67, 88)]
    return pd.DataFrame(rows, columns=["client_id", "user_id", "n", "purchases", "revenue"])


def synthetic(seed: int = 7) -> pd.DataFrame:
    """40 users, each with their own first day and activity rate, with bursts and long silences."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(40):
        start, rate = int(rng.integers(0, 80)), rng.uniform(0.05, 0.6)
        for n in range(start, DAYS):
            # Every 30 days a user's rate flips to near silence for a while: quiet, then back.
            quiet = (n // 30 + user) % 3 == 0
            if n == start or rng.random() < (0.02 if quiet else rate):
                purchases = int(rng.integers(0, 3))
                revenue = float(np.round(rng.uniform(1, 500), 2)) * purchases
                rows.append(("a", f"u{user}", n, purchases, revenue))
    return pd.DataFrame(rows, columns=["client_id", "user_id", "n", "purchases", "revenue"])


def activity(history: pd.DataFrame) -> pd.DataFrame:
    """user_daily_activity rows: sessions, views and carts derived from the day number, all distinct."""
    frame = history.copy()
    frame["partition_date"] = frame["n"].map(day)
    frame["sessions"] = 1 + frame["n"] % 4
    frame["views"] = 2 + frame["n"] % 5
    frame["clicks"] = 1
    frame["carts"] = frame["n"] % 2 + frame["purchases"]
    frame["events"] = frame["views"] + frame["clicks"] + frame["carts"] + frame["purchases"]
    frame["first_event_ts"] = pd.to_datetime(frame["partition_date"]) + pd.Timedelta(hours=3)
    frame["last_event_ts"] = frame["first_event_ts"] + pd.Timedelta(hours=1)
    return frame.drop(columns="n")


def away_and_back() -> pd.DataFrame:
    """Users who leave a 7-day audience and come back within five weeks, one of them twice on the
    client b, whose other user is there every day."""
    rows = [("b", "steady", n, 2, 0.7) for n in range(WEEKS)]
    # Seen days 1 and 2, out of a 7-day audience from day 9, back on 12 (both in its 28-day window),
    # out from 19, back on 20 and 30 (out from 27 to 29).
    rows += [("b", "away", n, int(n % 2 == 0), 5.5 * (n % 2 == 0)) for n in (1, 2, 12, 20, 30)]
    rows += [("b", "gone", n, 1, 1.25) for n in (0, 3)]  # out from day 10, never back
    return pd.DataFrame(rows, columns=["client_id", "user_id", "n", "purchases", "revenue"])


def expected_windows(rows: pd.DataFrame, audience_days: int = 0) -> pd.DataFrame:
    """Every day's windows summed afresh over the days in (D - N, D], for the users seen up to D, or
    in the last ``audience_days`` days (a rolling sum over a user x day grid with a zero where the
    user was not active)."""
    keys = ["client_id", "user_id"]
    dense = (
        rows.assign(active_days=1)
        .set_index([*keys, "partition_date"])[["active_days", *COUNTS, "revenue"]]
        .unstack(keys)
        .reindex(pd.date_range(day(0), rows["partition_date"].max()).date)
        .fillna(0)
    )
    seen = dense["active_days"].cumsum() > 0
    if audience_days:
        seen = dense["active_days"].rolling(audience_days, min_periods=1).sum() > 0
    frames = [
        dense.rolling(n, min_periods=1).sum().rename(columns=lambda c, n=n: f"{c}_{n}d", level=0)
        for n in WINDOWS
    ]
    wide = pd.concat(frames, axis=1)
    long = wide.stack(keys, future_stack=True)
    long.index.names = ["partition_date", *keys]
    return long[seen.stack(keys, future_stack=True).reindex(long.index)].sort_index()


def window_columns() -> list[str]:
    return [f"{c}_{n}d" for n in WINDOWS for c in ["active_days", *COUNTS, "revenue"]]


def build_days(
    tmp_path, rows: pd.DataFrame, days: int, audience_days: int | Callable[[int], int] = 0
) -> DuckDBWarehouse:
    """Every day's user_profile and user_features written by their SQL, oldest first (user_features
    for the users seen in the last ``audience_days`` days, 0: every user; a function: of the day number)."""
    audience = audience_days if callable(audience_days) else lambda n: audience_days
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    clients = sorted(rows["client_id"].unique())
    with warehouse.connect() as connection:
        for ddl in ("user_daily_activity_table", "user_profile_table", "user_features_table"):
            connection.execute(duckdb_sql(ddl))
        connection.register("rows", rows)
        connection.execute("INSERT INTO user_daily_activity BY NAME SELECT * FROM rows")
        for n in range(days):
            for table in ("user_profile", "user_features"):
                params = bind(
                    table, {"partition_date": day(n), "client_ids": clients, "audience_days": audience(n)}
                )
                connection.execute(
                    f"INSERT INTO {table} BY NAME SELECT $partition_date AS partition_date, q.* "  # noqa: S608
                    f"FROM ({duckdb_sql(table)}) AS q",
                    params,
                )
    return warehouse


def assert_windows_equal(warehouse: DuckDBWarehouse, rows: pd.DataFrame, audience_days: int = 0) -> None:
    with warehouse.connect() as connection:
        features = connection.execute("SELECT * FROM user_features").df()
    features["partition_date"] = features["partition_date"].dt.date
    got = features.set_index(["partition_date", "client_id", "user_id"]).sort_index()
    want = expected_windows(rows, audience_days)
    assert list(got.index) == list(want.index)
    pd.testing.assert_frame_equal(
        got[window_columns()], want[window_columns()], check_dtype=False, rtol=1e-12, atol=1e-9
    )
    for n in WINDOWS:
        # A window without a purchase holds exactly no revenue, not a residue of carried sums.
        assert (got.loc[got[f"purchases_{n}d"] == 0, f"revenue_{n}d"] == 0.0).all()
    conversion = (want["purchases_28d"] / want["carts_28d"]).where(want["carts_28d"] > 0)
    pd.testing.assert_series_equal(
        got["cart_conversion_28d"], conversion, check_names=False, rtol=1e-12, atol=1e-9
    )


def revenue_of_once(warehouse: DuckDBWarehouse) -> list[tuple]:
    with warehouse.connect() as connection:
        return connection.execute(
            "SELECT revenue_7d, revenue_28d, revenue_90d FROM user_features "
            "WHERE user_id = 'once' ORDER BY partition_date"
        ).fetchall()


def test_carried_windows_equal_the_windows_summed_afresh_over_five_weeks(tmp_path):
    rows = activity(hand_built())
    rows = rows[rows["partition_date"] < day(WEEKS)]
    warehouse = build_days(tmp_path, rows, WEEKS)
    assert_windows_equal(warehouse, rows)
    # The only purchase left each window exactly: 0, not what adding and subtracting 99.99 leaves.
    # As BigQuery would give them: no DuckDB HUGEINT (a sum not cast back to INT64) in the output.
    with warehouse.connect() as connection:
        params = bind(
            "user_features", {"partition_date": day(WEEKS - 1), "client_ids": ["a", "b"], "audience_days": 0}
        )
        types = connection.execute(f"DESCRIBE {duckdb_sql('user_features')}", params).df()
    assert "HUGEINT" not in set(types["column_type"])
    once = revenue_of_once(warehouse)
    assert (
        once[6] == (99.99, 99.99, 99.99) and once[7] == (0.0, 99.99, 99.99) and once[28] == (0.0, 0.0, 99.99)
    )


@pytest.mark.slow
def test_carried_windows_equal_the_windows_summed_afresh_over_a_hand_built_hundred_days(tmp_path):
    rows = activity(hand_built())
    warehouse = build_days(tmp_path, rows, DAYS)
    assert_windows_equal(warehouse, rows)
    assert revenue_of_once(warehouse)[89:91] == [(0.0, 0.0, 99.99), (0.0, 0.0, 0.0)]


@pytest.mark.slow
@pytest.mark.parametrize("audience_days", [0, 28])  # 28: users quiet for a while leave and come back
def test_carried_windows_equal_the_windows_summed_afresh_over_a_synthetic_hundred_days(
    tmp_path, audience_days
):
    rows = activity(synthetic())
    assert_windows_equal(build_days(tmp_path, rows, DAYS, audience_days), rows, audience_days)


def test_a_day_whose_previous_features_are_missing_fails_naming_the_day_to_backfill(tmp_path):
    settings = load_settings({"KARTE_HOME": str(tmp_path)})
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.ensure_table("user_features_table")
    early = LoyaltyClient(client_id="early")
    late = LoyaltyClient(client_id="late", first_day=day(3).isoformat())
    warehouse.replace_partition_with_rows(
        "user_features", day(2), pd.DataFrame({"client_id": ["early"], "user_id": ["u"]}), clients=["early"]
    )
    # Day 3: early's day 2 is there, and day 3 is late's first day, with no state before it.
    require_previous_day(warehouse, "user_features", day(3), [early, late], settings)
    # Day 4: the gap day 3 was never written for either client.
    with pytest.raises(Failure) as failure:
        require_previous_day(warehouse, "user_features", day(4), [early, late], settings)
    message = str(failure.value)
    assert "user_features for 2026-06-04 is missing for clients early, late" in message
    assert "early: 2026-06-01" in message and "late: 2026-06-04" in message


@pytest.mark.slow
def test_the_asset_refuses_a_day_whose_previous_features_were_never_written(graph):
    assert graph.materialize(
        FIRST_DAY, day(1), selection=["raw_events", "user_daily_activity", "user_profile"]
    ).success
    result = graph.materialize(day(1), selection=["user_features"], raise_on_error=False)
    assert not result.success
    assert "user_features for 2026-06-01 is missing for clients default" in failure_message(result)
    assert graph.materialize(FIRST_DAY, day(1), selection=["user_features"]).success


def test_an_audience_rule_keeps_the_recent_users_with_the_windows_of_the_rule_off(tmp_path):
    rows = activity(away_and_back())
    warehouse = build_days(tmp_path, rows, WEEKS, audience_days=7)
    assert_windows_equal(warehouse, rows, audience_days=7)
    with warehouse.connect() as connection:
        away = connection.execute(
            "SELECT partition_date, active_days_28d, purchases_28d, revenue_28d, active_days_90d "
            "FROM user_features WHERE user_id = 'away' ORDER BY partition_date"
        ).df()
    # Out on days 9-11, 19 and 27-29; back on day 12 with days 1 and 2 still in its 28-day window.
    days = [(d - FIRST).days for d in away["partition_date"].dt.date]
    assert days == [
        *range(1, 9),
        *range(12, 19),
        *range(20, 27),
        *range(30, WEEKS),
    ]
    back = away.set_index(pd.Index(days))
    assert back.loc[12].tolist()[1:] == [3, 2, 11.0, 3]
    # user_profile keeps everyone: "gone" is there on the last day, out of the audience.
    with warehouse.connect() as connection:
        assert connection.execute(
            "SELECT count(*) FROM user_profile WHERE user_id = 'gone' AND partition_date = $d",
            {"d": day(WEEKS - 1)},
        ).fetchone() == (1,)


def test_an_audience_widened_takes_users_back_when_seen_with_exact_windows(tmp_path):
    rows = activity(away_and_back())
    # A 7-day audience, then every user from day 25: "gone" (last seen on day 3) has no carried
    # windows, so it stays out until seen again rather than coming back with windows restarted.
    warehouse = build_days(tmp_path, rows, WEEKS, audience_days=lambda n: 7 if n < 25 else 0)
    with warehouse.connect() as connection:
        features = connection.execute("SELECT * FROM user_features").df()
    features["partition_date"] = features["partition_date"].dt.date
    got = features.set_index(["partition_date", "client_id", "user_id"]).sort_index()
    assert set(got.loc[day(25) :].index.get_level_values("user_id")) == {"steady", "away"}
    want = expected_windows(rows).reindex(got.index)
    pd.testing.assert_frame_equal(got[window_columns()], want[window_columns()], check_dtype=False, atol=1e-9)
