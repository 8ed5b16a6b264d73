"""The DuckDB warehouse: atomic partition replaces, a partition log, waiting for a locked file."""

import datetime as dt
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest
from dagster import MaterializeResult, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from karte_assets.assets.common import daily_asset, for_each_day, rows_metadata
from karte_assets.assets.training_set import loyalty_training_set
from karte_assets.clients import default_registry
from karte_assets.resources.warehouse import DuckDBWarehouse, Warehouse
from karte_assets.settings import current_settings

DAY = dt.date(2026, 6, 2)


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))


def rows_of(warehouse, table, day=DAY) -> pd.DataFrame:
    with warehouse.connect() as connection:
        return connection.execute(
            f"SELECT * FROM {table} WHERE partition_date = $d ORDER BY ALL", {"d": day}
        ).df()


def test_replacing_a_partition_twice_leaves_one_copy_and_other_days_alone(warehouse):
    warehouse.replace_partition_with_rows("t", DAY - dt.timedelta(days=1), pd.DataFrame({"x": [9]}))
    for _ in range(2):
        assert warehouse.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": [1, 2]})) == 2
    assert rows_of(warehouse, "t")["x"].tolist() == [1, 2]
    assert rows_of(warehouse, "t", DAY - dt.timedelta(days=1))["x"].tolist() == [9]


def test_a_table_from_an_earlier_version_gains_the_columns_a_newer_write_brings(warehouse):
    # A warehouse made before raw_event_rejects had source_file: the next run adds the column.
    warehouse.replace_partition_with_rows("t", DAY - dt.timedelta(days=1), pd.DataFrame({"x": [9]}))
    warehouse.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": [1], "source_file": ["a.csv"]}))
    assert rows_of(warehouse, "t")[["x", "source_file"]].values.tolist() == [[1, "a.csv"]]
    old = rows_of(warehouse, "t", DAY - dt.timedelta(days=1))
    assert old["x"].tolist() == [9] and old["source_file"].isna().all()


def test_a_write_that_fails_half_way_leaves_the_previous_partition_visible(warehouse):
    warehouse.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": [1, 2]}))
    # The DELETE of the old rows succeeds, then the INSERT fails on a type error.
    with pytest.raises(duckdb.ConversionException):
        warehouse.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": ["3", "not a number"]}))
    assert rows_of(warehouse, "t")["x"].tolist() == [1, 2]


def test_an_empty_partition_still_counts_as_materialised(warehouse):
    assert not warehouse.partition_exists("t", DAY)
    warehouse.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": pd.Series([], dtype="int64")}))
    assert warehouse.partition_exists("t", DAY)
    assert not warehouse.partition_exists("t", DAY + dt.timedelta(days=1))


def test_table_names_are_checked_before_they_reach_sql(warehouse):
    with pytest.raises(ValueError, match="not a valid table name"):
        warehouse.replace_partition_with_rows("t; DROP TABLE x", DAY, pd.DataFrame({"x": [1]}))


def hold_file(path: str, seconds: float) -> subprocess.Popen:
    """Another process that opens the DuckDB file (taking its lock) for ``seconds``."""
    code = (
        f"import duckdb, time; c = duckdb.connect({path!r}); print('held', flush=True); time.sleep({seconds})"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_file_locked_by_another_process_is_waited_for(warehouse):
    holder = hold_file(warehouse.path, 1.5)
    started = time.monotonic()
    warehouse.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": [1]}))
    assert time.monotonic() - started > 0.5
    holder.wait()


def test_a_lock_held_past_the_timeout_fails_loudly(warehouse):
    impatient = warehouse.model_copy(update={"lock_timeout_seconds": 0.3})
    holder = hold_file(warehouse.path, 3)
    with pytest.raises(duckdb.IOException, match="lock"):
        impatient.replace_partition_with_rows("t", DAY, pd.DataFrame({"x": [1]}))
    holder.kill()


def test_a_per_day_snapshot_keeps_only_its_retention_behind_the_day_written(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), snapshot_retention_days=10)
    days = [DAY - dt.timedelta(days=back) for back in (11, 10, 0)]
    for day in days:
        for table in ("user_features", "raw_events"):
            warehouse.replace_partition_with_rows(table, day, pd.DataFrame({"x": [1]}))
    with warehouse.connect() as connection:
        kept = {
            table: sorted(d for (d,) in connection.execute(f"SELECT partition_date FROM {table}").fetchall())
            for table in ("user_features", "raw_events")
        }
    assert kept == {"user_features": days[1:], "raw_events": days}  # only snapshots expire
    assert not warehouse.partition_exists("user_features", days[0])
    assert warehouse.partition_exists("user_features", days[1])
    assert warehouse.partition_exists("raw_events", days[0])


def test_a_retention_shorter_than_the_training_window_fails_before_writing(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), snapshot_retention_days=30)
    result = materialize(
        [loyalty_training_set],
        resources={"warehouse": warehouse, "loyalty_clients": default_registry(current_settings())},
        partition_key=(DAY + dt.timedelta(days=100)).isoformat(),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "reads user_features 77 days back" in message and "kept 30 days" in message
    assert not warehouse.partition_exists("loyalty_training_set", DAY + dt.timedelta(days=100))


@daily_asset()
def profile_days(context, warehouse: Warehouse) -> MaterializeResult:
    """A snapshot table written day by day, as user_profile is."""

    def write(day: dt.date) -> int:
        return warehouse.replace_partition_with_rows("user_profile", day, pd.DataFrame({"x": [day.day]}))

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, write)))


@daily_asset(deps=[profile_days])
def features_days(context, warehouse: Warehouse) -> MaterializeResult:
    """Reads each day's profile snapshot, as user_features does."""

    def write(day: dt.date) -> int:
        profile = rows_of(warehouse, "user_profile", day)[["x"]]
        return warehouse.replace_partition_with_rows("user_features", day, profile)

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, write)))


def test_a_range_run_longer_than_the_retention_keeps_its_own_days_until_the_next_run(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), snapshot_retention_days=2)
    first, last = DAY, DAY + dt.timedelta(days=5)
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
    }
    assert materialize([profile_days, features_days], resources={"warehouse": warehouse}, tags=tags).success
    # The profile's six days were written before the features read them: none expired meanwhile
    # (expiring by the newest day written emptied days 1-3 of a range run's features).
    days = [first + dt.timedelta(days=n) for n in range(6)]
    assert [rows_of(warehouse, "user_features", day)["x"].tolist() for day in days] == [[d.day] for d in days]
    # The next run's write expires them by the retention as usual.
    later = last + dt.timedelta(days=1)
    assert materialize(
        [profile_days], resources={"warehouse": warehouse}, partition_key=later.isoformat()
    ).success
    kept = sorted(d for d in days + [later] if warehouse.partition_exists("user_profile", d))
    assert kept == [later - dt.timedelta(days=2), later - dt.timedelta(days=1), later]


@daily_asset()
def writes_every_day(context, warehouse: Warehouse) -> MaterializeResult:
    """Two statements per day of the run, as a graph asset issues them."""

    def write(day: dt.date) -> int:
        rows = warehouse.replace_partition_with_rows("t", day, pd.DataFrame({"x": [day.day]}))
        assert warehouse.partition_exists("t", day)
        return rows

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, write)))


def test_a_run_opens_the_warehouse_file_once_and_releases_it_at_the_end(warehouse, monkeypatch):
    opened = []
    real_connect = duckdb.connect

    def counting_connect(database=":memory:", *args, **kwargs):
        opened.append(database)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting_connect)
    first, last = DAY, DAY + dt.timedelta(days=4)
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
    }
    assert materialize([writes_every_day], resources={"warehouse": warehouse}, tags=tags).success
    # Ten statements over five days, one connection: opening the file is no per-day cost.
    assert opened.count(warehouse.path) == 1
    # The run's end closed it: another process can take the file at once.
    impatient = f"import duckdb; duckdb.connect({warehouse.path!r}).close()"
    subprocess.run([sys.executable, "-c", impatient], check=True, timeout=60)
    assert rows_of(warehouse, "t", last)["x"].tolist() == [last.day]


def test_rows_per_day_is_a_markdown_table_of_the_days_in_order():
    day = dt.date(2024, 1, 1)
    metadata = rows_metadata({day + dt.timedelta(days=1): 1234, day: 5})
    assert metadata["rows_per_day"].value.splitlines() == [
        "| day | rows |",
        "|---|---|",
        f"| {day} | 5 |",
        f"| {day + dt.timedelta(days=1)} | 1,234 |",
    ]
