import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue
from pydantic import Field

from karte_assets.assets.checks import RAW_EVENTS_VALID, RAW_EVENTS_VOLUME, DayChecks, spec
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

# The counts of sql/raw_events_quality.sql that must be zero.
QUALITY_COUNTS = ("null_user_ids", "unknown_event_names", "outside_day", "invalid_values", "duplicates")
VOLUME_HISTORY_DAYS, VOLUME_MIN_HISTORY_DAYS = 28, 7
VOLUME_RATIO_RANGE = (0.5, 2.0)


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
    synthetic_planted_users: int = Field(
        default=0,
        ge=0,
        description="Synthetic shop only: bots and cheaters with known ids (bot-, rate-, loop-) active every "
        "day, for the anomaly use case to find.",
    )
    event_names: list[str] = Field(
        default=["view", "click", "cart", "purchase"],
        description="The event names the graph knows; rows with any other name are rejected.",
    )
    max_reject_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Fail a day (keeping its previous events) when more than this share of its rows is "
        "rejected as invalid (duplicates of an event id are dropped, never rejected).",
    )
    event_id_column: str | None = Field(
        default=None,
        description="Files only: the column that identifies an event; rows sharing it are one event, kept "
        "once. Unset: a column named event_id if there is one; without an id, identical rows are all kept.",
    )
    csv_delimiter: str | None = Field(
        default=None,
        description="CSV files only: the field delimiter. Unset: the one of , ; tab | that splits the header "
        "line into the required columns.",
    )


@dataclass
class DayCounts:
    """What the days of a run set aside: rejects by reason, dropped duplicates, identical rows kept."""

    rejects: dict[dt.date, dict[str, int]] = field(default_factory=dict)
    duplicates: dict[dt.date, int] = field(default_factory=dict)
    identical: dict[dt.date, int] = field(default_factory=dict)


def _store_day(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    day: dt.date,
    events: DayEvents,
    config: RawEventsConfig,
    counts: DayCounts,
) -> int:
    """Keep the day's rejects; then, unless there are too many, replace the day's events."""
    reasons = counts.rejects[day] = events.reject_counts()
    counts.duplicates[day] = events.duplicate_count()
    counts.identical[day] = identical = events.identical_count()
    if identical:
        context.log.warning(
            f"raw_events {day}: {identical:,} rows are exact copies of another row and were kept: without "
            "an event id, two orders of one amount on one day look alike. If the source has an id, name it "
            "as event_id_column and copies of one event are dropped instead."
        )
    warehouse.replace_partition_with_rows("raw_event_rejects", day, events.rejected())
    total, rejected = events.row_count(), sum(reasons.values())
    if total and rejected / total > config.max_reject_share:
        listed = ", ".join(f"{reason}: {count:,}" for reason, count in reasons.items())
        raise Failure(
            f"raw_events {day}: {rejected:,} of {total:,} rows from {config.source!r} rejected "
            f"({rejected / total:.1%}, over max_reject_share {config.max_reject_share:.1%}): {listed}. "
            "The day keeps its previous events, the days before it in this run are stored, and the rejected "
            "rows (file, line, reason) are in table raw_event_rejects. Fix the source, or raise "
            "max_reject_share in the raw_events config, and run the range again: each day is replaced, "
            "never appended."
        )
    return warehouse.replace_partition_with_rows("raw_events", day, events.accepted())


def _check_day(
    warehouse: Warehouse,
    day: dt.date,
    window: tuple[dt.datetime, dt.datetime],
    names: list[str],
    checks: DayChecks,
) -> None:
    params = {"partition_date": day, "event_names": names, "day_start": window[0], "day_end": window[1]}
    quality = warehouse.query("raw_events_quality", params).iloc[0]
    problems = {key: int(quality[key]) for key in QUALITY_COUNTS if quality[key]}
    checks.record(
        RAW_EVENTS_VALID,
        day,
        not problems,
        ", ".join(f"{key}: {count:,}" for key, count in problems.items())
        or f"{int(quality['events']):,} events, all valid",
    )
    history = warehouse.query("raw_events_volume", {"partition_date": day, "days": VOLUME_HISTORY_DAYS})
    if len(history) < VOLUME_MIN_HISTORY_DAYS:
        checks.record(RAW_EVENTS_VOLUME, day, True, f"only {len(history)} earlier days: no baseline yet")
        return
    median = float(history["events"].median())
    ratio = int(quality["events"]) / median if median else float("inf")
    checks.record(
        RAW_EVENTS_VOLUME,
        day,
        VOLUME_RATIO_RANGE[0] <= ratio <= VOLUME_RATIO_RANGE[1],
        f"{int(quality['events']):,} events, {ratio:.2f}x the median of the {len(history)} days before",
    )


@daily_asset(
    kinds={"duckdb"},
    check_specs=[
        spec(
            RAW_EVENTS_VALID,
            "raw_events",
            "No null user id, unknown event name, timestamp outside the day, invalid value or duplicate event.",
            blocking=True,
        ),
        spec(
            RAW_EVENTS_VOLUME,
            "raw_events",
            "The day's event count is within 0.5x-2x the median of the 28 days before.",
        ),
    ],
)
def raw_events(
    context: AssetExecutionContext, config: RawEventsConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Tracking events of the day (view, click, cart, purchase, ...), from the synthetic shop or event files."""
    settings = current_settings()
    world = SyntheticWorld(
        start=first_partition_day(),
        new_users_per_day=config.synthetic_new_users_per_day,
        seed=config.synthetic_seed,
        planted_users=config.synthetic_planted_users,
    )
    warehouse.ensure_table("raw_events_table")
    warehouse.ensure_table("raw_event_rejects_table")
    counts = DayCounts()

    if config.source == BIGQUERY_SOURCE and isinstance(warehouse, DuckDBWarehouse):
        raise Failure('source "bigquery" reads KARTE_BQ_EVENTS_TABLE: it needs KARTE_ENV=dev or prod')

    checks = DayChecks()

    def load(day: dt.date) -> int:
        start, end = day_window(day, settings.timezone)
        if config.source == BIGQUERY_SOURCE:
            params = {"day_start": start, "day_end": end}
            rows = warehouse.replace_partition("raw_events", day, "raw_events_from_table", params)
        else:
            with day_events(
                config.source,
                day,
                settings.timezone,
                world,
                config.event_names,
                settings.home / "tmp",
                event_id_column=config.event_id_column,
                csv_delimiter=config.csv_delimiter,
                memory_limit=settings.duckdb_memory_limit,
            ) as events:
                rows = _store_day(context, warehouse, day, events, config, counts)
        _check_day(warehouse, day, (start, end), config.event_names, checks)
        return rows

    rows = for_each_day(context, warehouse, load)
    last = max(rows)
    by_name = warehouse.query("event_counts", {"partition_date": last})
    rejected = pd.DataFrame(
        [
            (day, reason, n)
            for day, reasons in sorted(counts.rejects.items())
            for reason, n in reasons.items()
        ],
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
            "duplicates_dropped": MetadataValue.int(sum(counts.duplicates.values())),
            "identical_rows_kept": MetadataValue.int(sum(counts.identical.values())),
        },
        check_results=checks.results(),
    )
