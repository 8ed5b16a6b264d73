"""The code location loads, as the UI and the daemon load it."""

from dagster import Definitions

from karte_assets.assets.anomaly import ANOMALY_ASSETS
from karte_assets.definitions import ASSETS, defs


def test_the_code_location_loads_with_every_asset_schedule_and_sensor():
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "raw_events",
        "user_daily_activity",
        "user_profile",
        "user_features",
        "loyalty_training_set",
        "loyalty_model",
        "loyalty_scores",
        "user_behaviour_features",
        "user_anomaly_scores",
        "anomaly_exclusion_audience",
    }
    assert defs.resolve_job_def("anomaly_daily_job")
    assert defs.resolve_schedule_def("loyalty_daily_job_schedule").cron_schedule == "0 6 * * *"
    assert defs.resolve_sensor_def("run_status_publisher")
    assets = [*ASSETS, *ANOMALY_ASSETS]
    assert all(asset.descriptions_by_key[asset.key] for asset in assets), "every asset has a docstring"


def test_the_schedule_materialises_yesterday_in_the_partitions_time_zone():
    import datetime as dt

    from dagster import build_schedule_context

    schedule = defs.resolve_schedule_def("loyalty_daily_job_schedule")
    tokyo_morning = dt.datetime(2026, 9, 10, 6, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    requests = schedule.evaluate_tick(
        build_schedule_context(scheduled_execution_time=tokyo_morning)
    ).run_requests
    assert [request.partition_key for request in requests] == ["2026-09-09"]
