import datetime as dt

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue
from pydantic import Field

from karte_assets.assets.activity import user_daily_activity
from karte_assets.assets.common import (
    daily_asset,
    first_partition_day,
    for_each_day,
    markdown_table,
    rows_metadata,
)
from karte_assets.assets.features import user_features
from karte_assets.resources.warehouse import Warehouse
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


@daily_asset(deps=[user_features, user_daily_activity], kinds={"duckdb"})
def loyalty_training_set(
    context: AssetExecutionContext, config: TrainingSetConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Labelled snapshots for the day's model: users' features on day s, label = purchased in (s, s + horizon], s + horizon <= day."""
    # The oldest snapshot read is this many days before the day: user_features must still be there.
    reach = config.horizon_days + (config.max_snapshots - 1) * config.snapshot_every_days
    if reach > warehouse.snapshot_retention_days:
        raise Failure(
            f"the training set reads user_features {reach} days back (horizon_days + (max_snapshots - 1) "
            f"* snapshot_every_days), but snapshots are kept {warehouse.snapshot_retention_days} days "
            "(KARTE_SNAPSHOT_RETENTION_DAYS): raise the retention or shorten the window"
        )

    def build(day: dt.date) -> int:
        window = snapshot_dates(
            day,
            first_partition_day(),
            config.horizon_days,
            config.snapshot_every_days,
            config.max_snapshots,
            config.min_history_days,
        )
        if window is None:
            context.log.info(f"{day}: history too short for a labelled snapshot; the partition is empty")
            # An inverted window selects nothing, and still records the day as materialised.
            last = day - dt.timedelta(days=config.horizon_days)
            window = (last + dt.timedelta(days=1), last)
        params = {
            "first_snapshot_date": window[0],
            "last_snapshot_date": window[1],
            "snapshot_every_days": config.snapshot_every_days,
            "horizon_days": config.horizon_days,
        }
        return warehouse.replace_partition("loyalty_training_set", day, "loyalty_training_set", params)

    rows = for_each_day(context, warehouse, build)
    summary = warehouse.query("training_set_summary", {"partition_date": max(rows)})
    return MaterializeResult(
        metadata={**rows_metadata(rows), "snapshots": MetadataValue.md(markdown_table(summary))}
    )
