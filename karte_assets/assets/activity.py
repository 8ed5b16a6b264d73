from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, ResourceParam
from pydantic import Field

from karte_assets.assets.common import daily_asset, for_range, rows_metadata
from karte_assets.clients import ClientRegistry, run_clients
from karte_assets.resources.warehouse import Warehouse


class ActivityConfig(Config):
    session_gap_minutes: int = Field(
        default=30,
        ge=1,
        description="Minutes without an event after which a user's next event starts a new session.",
    )


@daily_asset(deps=[AssetKey("raw_events")], kinds={"duckdb"})
def user_daily_activity(
    context: AssetExecutionContext,
    config: ActivityConfig,
    warehouse: Warehouse,
    loyalty_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """One row per client and user active that day: events per type, sessions and revenue, aggregated in the warehouse."""
    params = {
        "session_gap_seconds": config.session_gap_minutes * 60,
        "client_ids": [client.client_id for client in run_clients(context, loyalty_clients)],
    }
    # A day depends only on its own events: the run's days are one statement, each day still replaced whole.
    rows = for_range(
        context,
        warehouse,
        lambda days: warehouse.replace_partitions("user_daily_activity", days, "user_daily_activity", params),
    )
    return MaterializeResult(metadata=rows_metadata(rows))
