import datetime as dt

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    ResourceParam,
    TimeWindowPartitionMapping,
)

from karte_assets.assets.common import daily_asset, for_each_day, rows_metadata
from karte_assets.clients import ClientRegistry, run_clients
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings

# user_profile[D] builds on user_profile[D-1]; declaring it lets Dagster show and order the chain.
PREVIOUS_DAY = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


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

    def build(day: dt.date) -> int:
        previous = day - dt.timedelta(days=1)
        carried = [client for client in clients if day > client.start(settings)]
        logged = warehouse.logged_clients("user_profile", previous, [c.client_id for c in carried])
        missing = [client for client in carried if client.client_id not in logged]
        if missing:
            raise Failure(
                f"user_profile for {previous} is missing for clients "
                f"{', '.join(c.client_id for c in missing)}, and {day} builds on it: materialise the "
                f"range from the first missing day up to {day} (a client's lifetime state starts on its "
                f"first day, {', '.join(f'{c.client_id}: {c.start(settings)}' for c in missing)})"
            )
        return warehouse.replace_partition("user_profile", day, "user_profile", {"client_ids": client_ids})

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, build)))
