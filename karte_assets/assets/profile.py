import datetime as dt

from dagster import AssetDep, AssetExecutionContext, AssetKey, MaterializeResult, ResourceParam

from karte_assets.assets.common import (
    PREVIOUS_DAY,
    daily_asset,
    for_each_day,
    require_previous_day,
    rows_metadata,
)
from karte_assets.clients import ClientRegistry, run_clients
from karte_assets.partitions import partition_days
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings


@daily_asset(
    deps=[AssetKey("user_daily_activity"), AssetDep("user_profile", partition_mapping=PREVIOUS_DAY)],
    kinds={"duckdb"},
)
def user_profile(
    context: AssetExecutionContext, warehouse: Warehouse, loyalty_clients: ResourceParam[ClientRegistry]
) -> MaterializeResult:
    """Lifetime state of every user of each client seen so far (first/last seen, lifetime counts), carried forward one day at a time."""
    warehouse.ensure_table("user_profile_table")
    settings = current_settings()
    clients = run_clients(context, loyalty_clients)
    client_ids = [client.client_id for client in clients]

    first = partition_days(context)[0]

    def build(day: dt.date) -> int:
        # The days after the run's first build on days this run has just written.
        if day == first:
            require_previous_day(warehouse, "user_profile", day, clients, settings)
        return warehouse.replace_partition("user_profile", day, "user_profile", {"client_ids": client_ids})

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, build)))
