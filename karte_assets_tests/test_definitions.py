"""The code location loads, as the UI and the daemon load it."""

from dagster import Definitions

from karte_assets.assets.anomaly import ANOMALY_ASSETS
from karte_assets.assets.demand import DEMAND_ASSETS
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
        "daily_demand",
        "demand_model",
        "demand_forecast",
        "overstock_candidates",
    }
    demand_job = defs.resolve_job_def("demand_daily_job")
    assert {key.to_user_string() for key in demand_job.asset_layer.executable_asset_keys} == {
        "daily_demand",
        "demand_model",
        "demand_forecast",
        "overstock_candidates",
    }
    assert defs.resolve_job_def("anomaly_daily_job")
    assert defs.resolve_schedule_def("loyalty_daily_job_schedule").cron_schedule == "0 6 * * *"
    assert defs.resolve_sensor_def("run_status_publisher")
    assets = [*ASSETS, *ANOMALY_ASSETS, *DEMAND_ASSETS]
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


def test_loading_the_instances_walks_the_declaration_tree_once_not_once_per_instance(tmp_path, monkeypatch):
    """Dagster's loader walked every declaration for each instance (quadratic: seconds at 1,000 shops)."""
    from dagster.components.core.decl import ComponentDecl

    from karte_assets.components.instances import clients_of
    from karte_assets.definitions import load_instances

    shops = 40
    (tmp_path / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "many_shops"\ndefs_module = "many_shops.defs"\n'
    )
    for number in range(shops):
        folder = tmp_path / "many_shops" / "defs" / f"shop{number:03d}"
        folder.mkdir(parents=True)
        (folder / "defs.yaml").write_text(
            f"type: karte_assets.LoyaltyScoring\nattributes:\n  client_id: shop{number:03d}\n"
        )
    for package in ("many_shops", "many_shops/defs"):
        (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    walk = ComponentDecl.iterate_loc_component_decl_pairs
    visits = []

    def counted(self):
        visits.append(self.loc)
        yield from walk(self)

    monkeypatch.setattr(ComponentDecl, "iterate_loc_component_decl_pairs", counted)
    instances = load_instances(tmp_path / "many_shops")
    assert [client.client_id for client in clients_of(instances)] == [
        f"shop{number:03d}" for number in range(shops)
    ]
    # A walk visits each declaration once (each shop's folder and its yaml, the defs folder, the
    # root): a few walks, not one per instance.
    walks = len(visits) / (2 * shops + 2)
    assert walks <= 3, f"{len(visits)} visits = {walks:.1f} walks of the tree for {shops} instances"
