import datetime as dt

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue
from pydantic import Field

from karte_assets.assets.common import (
    daily_asset,
    first_partition_day,
    for_each_day,
    markdown_table,
    rows_metadata,
)
from karte_assets.event_sources import DayEvents, day_events
from karte_assets.partitions import day_window
from karte_assets.plots import chart_metadata, event_volume_figure
from karte_assets.resources.warehouse import DuckDBWarehouse, Warehouse
from karte_assets.settings import BIGQUERY_SOURCE, current_settings
from karte_assets.synthetic import SyntheticWorld


class RawEventsConfig(Config):
    source: str = Field(
        default=current_settings().events_source,
        description='"synthetic" for the simulated shop, a Parquet/CSV path or glob of event files, or '
        '"bigquery" for the existing events table (KARTE_BQ_EVENTS_TABLE, dev and prod).',
    )
    synthetic_new_users_per_day: float = Field(
        default=current_settings().synthetic_users_per_day,
        gt=0,
        description="Synthetic shop only: users arriving per day on average.",
    )
    synthetic_seed: int = Field(default=7, description="Synthetic shop only: the random seed of the world.")
    event_names: list[str] = Field(
        default=["view", "click", "cart", "purchase"],
        description="The event names the graph knows; rows with any other name are rejected.",
    )
    max_reject_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Fail a day (keeping its previous events) when more than this share of its rows is rejected.",
    )


def _store_day(
    warehouse: Warehouse, day: dt.date, events: DayEvents, config: RawEventsConfig, rejects: dict
) -> int:
    """Keep the day's rejects; then, unless there are too many, replace the day's events."""
    counts = events.reject_counts()
    rejects[day] = counts
    warehouse.replace_partition_with_rows("raw_event_rejects", day, events.rejected())
    total, rejected = events.row_count(), sum(counts.values())
    if total and rejected / total > config.max_reject_share:
        reasons = ", ".join(f"{reason}: {count:,}" for reason, count in counts.items())
        raise Failure(
            f"raw_events {day}: {rejected:,} of {total:,} rows from {config.source!r} rejected "
            f"({rejected / total:.1%}, over max_reject_share {config.max_reject_share:.1%}): {reasons}. "
            f"The day keeps its previous events; the rejected rows are in table raw_event_rejects."
        )
    return warehouse.replace_partition_with_rows("raw_events", day, events.accepted())


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
    warehouse.ensure_table("raw_event_rejects_table")
    rejects: dict[dt.date, dict[str, int]] = {}

    if config.source == BIGQUERY_SOURCE and isinstance(warehouse, DuckDBWarehouse):
        raise Failure('source "bigquery" reads KARTE_BQ_EVENTS_TABLE: it needs KARTE_ENV=dev or prod')

    def load(day: dt.date) -> int:
        if config.source == BIGQUERY_SOURCE:
            start, end = day_window(day, settings.timezone)
            params = {"day_start": start, "day_end": end}
            return warehouse.replace_partition("raw_events", day, "raw_events_from_table", params)
        with day_events(
            config.source, day, settings.timezone, world, config.event_names, settings.home / "tmp"
        ) as events:
            return _store_day(warehouse, day, events, config, rejects)

    rows = for_each_day(context, load)
    last = max(rows)
    by_name = warehouse.query("event_counts", {"partition_date": last})
    rejected = pd.DataFrame(
        [(day, reason, count) for day, counts in sorted(rejects.items()) for reason, count in counts.items()],
        columns=["day", "reason", "rows"],
    )
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "source": MetadataValue.text(config.source),
            "events_by_name": MetadataValue.md(markdown_table(by_name)),
            **chart_metadata(context.log, {"event_volume_chart": lambda: event_volume_figure(by_name, last)}),
            "rejected_rows": MetadataValue.int(int(rejected["rows"].sum())),
            "rejects": MetadataValue.md(markdown_table(rejected) if len(rejected) else "no rejected rows"),
        }
    )
