from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue
from pydantic import Field

from karte_assets.assets.common import (
    daily_asset,
    first_partition_day,
    for_each_day,
    markdown_table,
    rows_metadata,
)
from karte_assets.event_sources import day_events
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings
from karte_assets.synthetic import SyntheticWorld


class RawEventsConfig(Config):
    source: str = Field(
        default=current_settings().events_source,
        description='"synthetic" for the simulated shop, or a Parquet/CSV path or glob of event files.',
    )
    synthetic_new_users_per_day: float = Field(
        default=current_settings().synthetic_users_per_day,
        gt=0,
        description="Synthetic shop only: users arriving per day on average.",
    )
    synthetic_seed: int = Field(default=7, description="Synthetic shop only: the random seed of the world.")


@daily_asset(kinds={"duckdb"})
def raw_events(
    context: AssetExecutionContext, config: RawEventsConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Tracking events of the day (view, click, cart, purchase, ...), from the synthetic shop or event files."""
    settings = current_settings()
    world = SyntheticWorld(
        start=first_partition_day(),
        new_users_per_day=config.synthetic_new_users_per_day,
        seed=config.synthetic_seed,
    )
    warehouse.ensure_table("raw_events_table")

    def load(day):
        with day_events(config.source, day, settings.timezone, world) as rows:
            return warehouse.replace_partition_with_rows("raw_events", day, rows)

    rows = for_each_day(context, load)
    last = max(rows)
    by_name = warehouse.query("event_counts", {"partition_date": last})
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "source": MetadataValue.text(config.source),
            "events_by_name": MetadataValue.md(markdown_table(by_name)),
        }
    )
