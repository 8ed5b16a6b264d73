"""A run's range of days written at once equals the same days written one at a time, and a failed
range write leaves every day as it was (issue 13: no fixed cost per day)."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from karte_assets.assets.checks import FEATURES_VALID, DayChecks
from karte_assets.assets.events import _check_days
from karte_assets.assets.features import _check_quality
from karte_assets.clients import LoyaltyClient
from karte_assets.environments import local_resources
from karte_assets.event_sources import SyntheticSource, range_events
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import load_settings
from karte_assets.synthetic import SyntheticWorld
from karte_assets_tests.graph import (
    FIRST_DAY,
    LocalGraph,
)

DAYS = [FIRST_DAY + dt.timedelta(days=i) for i in range(4)]
SELECTION = ["raw_events", "user_daily_activity"]
NAMES = ["view", "click", "cart", "purchase"]
# Every day loads and reports its rejects (the row without a time is all of the third day).
CONFIG = {"ops": {"raw_events": {"config": {"max_reject_share": 1.0, "synthetic_new_users_per_day": 5.0}}}}


def shop_a_csv(path) -> str:
    """Tokyo days: a session across midnight, an event id sent twice on one day and again three days
    later (another day's event), a row without a usable time (every day reports it), a bad value,
    and no events on the third day."""
    rows = [
        ("e1", "u1", "2026-06-01T14:50:00Z", "view", ""),  # 23:50 in Tokyo
        ("e2", "u1", "2026-06-01T15:10:00Z", "purchase", "12.5"),  # 00:10 the next day
        ("e3", "u2", "2026-06-01T03:00:00Z", "cart", ""),
        ("e3", "u2", "2026-06-01T03:00:00Z", "cart", ""),  # sent twice
        ("e4", "u3", "2026-06-02T01:00:00Z", "view", "-3"),  # rejected: negative value
        ("e5", "u3", "not a time", "view", ""),
        ("e3", "u2", "2026-06-04T03:00:00Z", "purchase", "8"),  # the id again, on another day
        ("e6", "u4", "2026-06-04T05:00:00Z", "click", ""),
    ]
    pd.DataFrame(rows, columns=["event_id", "user_id", "event_ts", "event_name", "value"]).to_csv(
        path, index=False
    )
    return str(path)


def shop_b_parquet(path) -> str:
    """New York days, without event ids: identical rows kept; no events on the second day."""
    ts = pd.to_datetime(
        ["2026-06-01T13:00:00Z", "2026-06-01T13:00:00Z", "2026-06-03T23:30:00Z", "2026-06-04T04:10:00Z"]
    )
    pd.DataFrame(
        {
            "user_id": ["v1", "v1", "v2", "v2"],
            "event_ts": ts,
            "event_name": ["view", "view", "cart", "purchase"],
        }
    ).assign(value=[0.0, 0.0, 0.0, 20.0]).to_parquet(path, index=False)
    return str(path)


def shops(home, tmp_path) -> LocalGraph:
    graph = LocalGraph(home)
    clients = [
        LoyaltyClient(client_id="shop-a", events_source=shop_a_csv(tmp_path / "a.csv")),
        LoyaltyClient(
            client_id="shop-b",
            events_source=shop_b_parquet(tmp_path / "b.parquet"),
            timezone="America/New_York",
        ),
    ]
    graph.resources = local_resources(load_settings({"KARTE_HOME": str(home)}), clients)
    graph.warehouse = graph.resources["warehouse"]
    return graph


def run(graph: LocalGraph, first: dt.date, last: dt.date) -> None:
    assert graph.materialize(first, last, run_config=CONFIG, selection=SELECTION).success


def outcomes(warehouse, days: list[dt.date]) -> dict:
    checks = DayChecks()
    _check_days(
        warehouse,
        days,
        {"Asia/Tokyo": ["default", "shop-a"], "America/New_York": ["shop-b"]},
        ["view", "click", "cart", "purchase"],
        checks,
    )
    return dict(checks._outcomes)  # each check's (passed, detail) per day


@pytest.mark.slow  # five runs of the graph's first two assets, ~20 s
def test_a_range_run_writes_and_checks_what_a_run_per_day_does(tmp_path):
    ranged, daily = shops(tmp_path / "ranged", tmp_path), shops(tmp_path / "daily", tmp_path)
    run(ranged, DAYS[0], DAYS[-1])
    for day in DAYS:
        run(daily, day, day)
    for table in ("raw_events", "raw_event_rejects", "user_daily_activity"):
        pd.testing.assert_frame_equal(ranged.table(table), daily.table(table), obj=table)
    logged = "SELECT * EXCLUDE (written_at) FROM partition_log ORDER BY ALL"
    with ranged.warehouse.connect() as a, daily.warehouse.connect() as b:
        assert a.execute(logged).fetchall() == b.execute(logged).fetchall()
    # What the data holds: the session across midnight is two days' sessions, the id sent twice is
    # dropped once, the same id three days later is that day's event, the row without a time is
    # reported on every day, and days without events are written empty.
    activity = ranged.table("user_daily_activity")
    assert activity[activity["user_id"] == "u1"][["partition_date", "sessions"]].values.tolist() == [
        [pd.Timestamp(DAYS[0]), 1],
        [pd.Timestamp(DAYS[1]), 1],
    ]
    events = ranged.table("raw_events")
    shop_a = events[events["client_id"] == "shop-a"]
    assert shop_a.groupby("partition_date").size().to_dict() == {
        pd.Timestamp(DAYS[0]): 2,
        pd.Timestamp(DAYS[1]): 1,
        pd.Timestamp(DAYS[3]): 2,
    }
    rejects = ranged.table("raw_event_rejects")
    assert (
        rejects[rejects["reject_reason"] == "unparseable event_ts"].groupby("partition_date").size() == 1
    ).all()
    assert len(rejects[rejects["reject_reason"] == "unparseable event_ts"]) == len(DAYS)
    assert ranged.warehouse.partition_exists("raw_events", DAYS[2], "shop-a")
    # The checks over the range in one query each judge every day as a check of that day alone.
    by_day: dict = {}
    for day in DAYS:
        for name, days in outcomes(ranged.warehouse, [day]).items():
            by_day.setdefault(name, {}).update(days)
    assert outcomes(ranged.warehouse, DAYS) == by_day


def frame(days: list[dt.date], x: int, client: str = "default") -> pd.DataFrame:
    return pd.DataFrame({"partition_date": days, "client_id": client, "x": x})


@pytest.mark.parametrize(
    "bad",
    [
        frame([DAYS[2]], 2, client="shop-z"),  # a row of a client outside the write
        frame([DAYS[3]], 2),  # a row of a day outside the write
    ],
    ids=["other client", "other day"],
)
def test_a_range_write_failing_on_its_last_day_leaves_every_day_as_it_was(tmp_path, bad):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    days = DAYS[:3]
    assert warehouse.replace_partitions_with_rows("t", days, frame(days, 1)) == dict.fromkeys(days, 1)
    with warehouse.connect() as connection:
        before = connection.execute("SELECT * FROM t ORDER BY ALL").fetchall()
        log = connection.execute("SELECT * FROM partition_log ORDER BY ALL").fetchall()
    # DuckDB fails the statement on the bad row, after the good days' rows went in.
    with pytest.raises(duckdb.Error, match="outside the"):
        warehouse.replace_partitions_with_rows("t", days, pd.concat([frame(days[:2], 2), bad]))
    with warehouse.connect() as connection:
        assert connection.execute("SELECT * FROM t ORDER BY ALL").fetchall() == before
        assert connection.execute("SELECT * FROM partition_log ORDER BY ALL").fetchall() == log
    # The same range again, valid: every day replaced, none doubled.
    assert warehouse.replace_partitions_with_rows("t", days, frame(days, 3)) == dict.fromkeys(days, 1)
    assert warehouse.replace_partitions_with_rows("t", days, frame(days, 3)) == dict.fromkeys(days, 1)


def test_a_range_write_needs_consecutive_days(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    with pytest.raises(ValueError, match="consecutive days"):
        warehouse.replace_partitions_with_rows("t", [DAYS[0], DAYS[2]], frame([DAYS[0]], 1))


def test_a_synthetic_range_whose_first_day_has_a_column_all_null_reads_every_day(tmp_path):
    # Tiny days: product_id is null on every event of some days (NULL-typed in DuckDB) and not on others.
    world = SyntheticWorld(start=FIRST_DAY, new_users_per_day=5.0, seed=7)
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(20)]
    with range_events(SyntheticSource(world), days, "Asia/Tokyo", NAMES, tmp_path / "spill") as events:
        counts = events.counts_by_day()
    assert sorted(counts) == days and all(c.rows > 0 for c in counts.values())


def test_the_feature_check_of_a_range_in_one_query_judges_each_day_as_alone(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.ensure_table("user_features_table")
    good = {"user_id": ["u1", "u2"], "tenure_days": 3, "days_since_last_seen": 1, "lifetime_active_days": 2}
    rows = {}
    for day, features in zip(DAYS[:3], [good, {**good, "tenure_days": -1}, good], strict=True):
        rows[day] = warehouse.replace_partition_with_rows("user_features", day, pd.DataFrame(features))
    params = {"client_ids": ["default"]}
    ranged, daily = DayChecks(), DayChecks()
    _check_quality(warehouse, params, rows, ranged)
    for day in rows:
        _check_quality(warehouse, params, {day: rows[day]}, daily)
    assert ranged._outcomes == daily._outcomes
    assert [ranged.passed(FEATURES_VALID, day) for day in rows] == [True, False, True]
