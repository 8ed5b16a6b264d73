import datetime as dt

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
)
from pydantic import Field

from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.clients import ClientRegistry, LoyaltyClient, grouped, run_clients
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings
from karte_assets.training.loyalty import snapshot_dates


class TrainingSetConfig(Config):
    horizon_days: int = Field(
        default=28,
        ge=1,
        description="Label horizon: a user is loyal if they buy within this many days after a snapshot; "
        "the score is then the chance to buy within this many days.",
    )
    snapshot_every_days: int = Field(
        default=7, ge=1, description="Days between two labelled snapshots of every user's features."
    )
    max_snapshots: int = Field(
        default=8, ge=2, description="At most this many snapshots, the newest first: more means more rows."
    )
    min_history_days: int = Field(
        default=14,
        ge=0,
        description="No snapshot earlier than this many days after the first day of history, so that the "
        "first snapshots' 7/28/90-day windows are not mostly empty.",
    )


@daily_asset(deps=[AssetKey("user_features"), AssetKey("user_daily_activity")], kinds={"duckdb"})
def loyalty_training_set(
    context: AssetExecutionContext,
    config: TrainingSetConfig,
    warehouse: Warehouse,
    loyalty_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Labelled snapshots for each client's model of the day: users' features on day s, label = purchased in (s, s + horizon], s + horizon <= day."""
    settings = current_settings()
    clients = run_clients(context, loyalty_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    for client_id, own in configs.items():
        # The oldest snapshot read is this many days before the day: user_features must still be there.
        reach = own.horizon_days + (own.max_snapshots - 1) * own.snapshot_every_days
        if reach > warehouse.snapshot_retention_days:
            raise Failure(
                f"client {client_id}: the training set reads user_features {reach} days back (horizon_days "
                f"+ (max_snapshots - 1) * snapshot_every_days), but snapshots are kept "
                f"{warehouse.snapshot_retention_days} days (KARTE_SNAPSHOT_RETENTION_DAYS): raise the "
                "retention or shorten the window"
            )

    def params_of(day: dt.date, client: LoyaltyClient) -> tuple[dt.date, dt.date, int, int]:
        own = configs[client.client_id]
        window = snapshot_dates(
            day,
            client.start(settings),
            own.horizon_days,
            own.snapshot_every_days,
            own.max_snapshots,
            own.min_history_days,
        )
        if window is None:
            # An inverted window selects nothing, and still records the day as materialised.
            last = day - dt.timedelta(days=own.horizon_days)
            window = (last + dt.timedelta(days=1), last)
        return (*window, own.snapshot_every_days, own.horizon_days)

    def build(day: dt.date) -> int:
        rows = 0
        # Clients with the same snapshot days and horizon share one statement.
        for (first, last, every, horizon), client_ids in grouped(
            clients, lambda c: params_of(day, c)
        ).items():
            if first > last:
                context.log.info(
                    f"{day}: history too short for a labelled snapshot of {', '.join(client_ids)}"
                )
            params = {
                "first_snapshot_date": first,
                "last_snapshot_date": last,
                "snapshot_every_days": every,
                "horizon_days": horizon,
                "client_ids": client_ids,
            }
            rows += warehouse.replace_partition("loyalty_training_set", day, "loyalty_training_set", params)
        return rows

    rows = for_each_day(context, warehouse, build)
    summary = warehouse.query(
        "training_set_summary", {"partition_date": max(rows), "client_ids": list(configs)}
    )
    return MaterializeResult(
        metadata={**rows_metadata(rows), "snapshots": MetadataValue.md(markdown_table(summary))}
    )
