"""Every local DuckDB database is bounded by KARTE_DUCKDB_MEMORY_LIMIT and spills under $KARTE_HOME/tmp."""

import datetime as dt
import logging

import pytest

from karte_assets.duckdb_memory import memory_limit_bytes, share
from karte_assets.event_sources import SyntheticSource, day_events
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import SettingsError, load_settings
from karte_assets.synthetic import SyntheticWorld

GB = 2**30


def settings_of(connection) -> tuple[str, str]:
    return connection.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()


@pytest.mark.parametrize(
    "text, machine, expected",
    [
        ("10%", 24 * GB, int(2.4 * GB)),
        ("2GB", None, 2 * 10**9),
        ("1.5GiB", None, int(1.5 * GB)),
        ("512 mb", None, 512 * 10**6),
    ],
)
def test_a_limit_is_a_share_of_the_machine_or_a_size(text, machine, expected):
    assert memory_limit_bytes(text, machine) == expected


@pytest.mark.parametrize("text", ["lots", "0%", "150%", "10", "100MB", "-1GB"])
def test_a_bad_limit_is_refused_naming_the_variable(text):
    with pytest.raises(SettingsError, match=f"KARTE_DUCKDB_MEMORY_LIMIT: DuckDB memory limit '{text}'"):
        load_settings({"KARTE_DUCKDB_MEMORY_LIMIT": text})


def test_the_warehouse_connection_is_bounded_and_spills_under_the_home_tmp_folder(tmp_path):
    default = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    with default.connect() as connection:
        limit, spill = settings_of(connection)
    # DuckDB reports the limit rounded in its own units (e.g. "2.3 GiB"); its default is 80%.
    assert abs(memory_limit_bytes(limit) - memory_limit_bytes("10%")) < 0.06 * GB
    assert spill == str(tmp_path / "tmp")
    capped = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"), memory_limit="300MiB")
    with capped.connect() as connection:
        assert settings_of(connection)[0] == "300.0 MiB"


def test_the_event_sources_database_is_bounded_too(tmp_path):
    world = SyntheticWorld(start=dt.date(2026, 6, 1))
    with day_events(
        SyntheticSource(world),
        dt.date(2026, 6, 2),
        "Asia/Tokyo",
        ["view"],
        tmp_path / "tmp",
        memory_limit="400MiB",
    ) as events:
        assert settings_of(events.connection) == ("400.0 MiB", str(tmp_path / "tmp"))


@pytest.mark.parametrize("held_for_a_run", [True, False])
def test_the_event_sources_and_the_warehouse_share_one_limit(tmp_path, held_for_a_run):
    """raw_events opens a database per event source beside the warehouse: all of them within one
    limit, not one limit each (the two caps made raw_events a large day's peak)."""
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"), memory_limit="4GiB")
    if held_for_a_run:
        warehouse.hold_for_run(f"run-{tmp_path.name}", logging.getLogger(__name__))
    try:
        with warehouse.sharing_memory("4GiB", 4) as each:
            with warehouse.connect() as connection:
                assert settings_of(connection)[0] == "2.0 GiB"
            assert each == "512MiB"  # 2 GiB + 4 x 512 MiB = 4 GiB
        with warehouse.connect() as connection:
            assert settings_of(connection)[0] == "4.0 GiB"
    finally:
        warehouse.teardown_after_execution(None)


def test_a_share_keeps_duckdbs_minimum():
    assert share("1GiB", 2) == "512MiB"
    assert share("1GiB", 50) == "256MiB"


def test_the_local_warehouse_takes_the_variable(tmp_path):
    from karte_assets.definitions import local_resources

    settings = load_settings({"KARTE_HOME": str(tmp_path), "KARTE_DUCKDB_MEMORY_LIMIT": "1GB"})
    warehouse = local_resources(settings)["warehouse"]
    with warehouse.connect() as connection:
        assert settings_of(connection) == ("953.0 MiB", str(tmp_path / "tmp"))
