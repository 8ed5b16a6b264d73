"""The one partitioning of the graph: a day in the configured time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import AssetExecutionContext, DailyPartitionsDefinition

from karte_assets.settings import Settings, current_settings


def daily_partitions_for(settings: Settings) -> DailyPartitionsDefinition:
    # end_offset=0: the newest partition is the last complete day, so "yesterday" is always there.
    return DailyPartitionsDefinition(
        start_date=settings.partitions_start.isoformat(),
        timezone=settings.timezone,
        end_offset=0,
    )


def day_window(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants (aware, UTC) where the local day ``day`` starts and the next one starts."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def partition_days(context: AssetExecutionContext) -> list[dt.date]:
    """The days this run materialises, oldest first: one for a plain run, many for a backfill."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]


daily_partitions = daily_partitions_for(current_settings())
