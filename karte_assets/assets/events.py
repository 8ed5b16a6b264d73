import datetime as dt
from contextlib import ExitStack
from dataclasses import dataclass, field

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, ResourceParam
from pydantic import Field

from karte_assets.assets.checks import RAW_EVENTS_VALID, RAW_EVENTS_VOLUME, DayChecks, spec
from karte_assets.assets.common import (
    clients_stream,
    daily_asset,
    for_each_day,
    markdown_table,
    rows_metadata,
)
from karte_assets.clients import ClientRegistry, grouped, run_clients
from karte_assets.event_sources import DayEvents, TableSource, day_events
from karte_assets.partitions import day_window
from karte_assets.plots import chart_metadata, event_volume_figure
from karte_assets.resources.event_sources import EventSources
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings

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
    """What the days of a run set aside: rejects by reason, dropped duplicates, identical rows kept
    (each by client, then day)."""

    rejects: dict[tuple[str, dt.date], dict[str, int]] = field(default_factory=dict)
    duplicates: dict[tuple[str, dt.date], int] = field(default_factory=dict)
    identical: dict[tuple[str, dt.date], int] = field(default_factory=dict)


# Clients whose day of events is read and written together: that many source connections are open
# at once, and a day of N clients is ceil(N / this) loads of events and of rejects.
CLIENTS_PER_LOAD = 50


def _store_day(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    day: dt.date,
    sources: dict[str, DayEvents],
    configs: dict[str, RawEventsConfig],
    counts: DayCounts,
) -> int:
    """Keep the day's rejects of these clients; then, unless a client has too many, replace the
    day's events of all of them (a stream of every client's rows, one load)."""
    failures = []
    for client_id, events in sources.items():
        key = (client_id, day)
        reasons = counts.rejects[key] = events.reject_counts()
        counts.duplicates[key] = events.duplicate_count()
        counts.identical[key] = identical = events.identical_count()
        if identical:
            context.log.warning(
                f"raw_events {day} client {client_id}: {identical:,} rows are exact copies of another row "
                "and were kept: without an event id, two orders of one amount on one day look alike. If the "
                "source has an id, name it as event_id_column and copies of one event are dropped instead."
            )
        total, rejected, config = events.row_count(), sum(reasons.values()), configs[client_id]
        if total and rejected / total > config.max_reject_share:
            listed = ", ".join(f"{reason}: {count:,}" for reason, count in reasons.items())
            # A one-client run says it as before clients existed; several name the client.
            failures.append(
                ("" if len(configs) == 1 else f"client {client_id}: ")
                + f"{rejected:,} of {total:,} rows from {config.source!r} rejected "
                f"({rejected / total:.1%}, over max_reject_share {config.max_reject_share:.1%}): {listed}"
            )
    clients = list(sources)
    warehouse.replace_partition_with_rows(
        "raw_event_rejects",
        day,
        clients_stream((client_id, events.rejected) for client_id, events in sources.items()),
        clients=clients,
    )
    if failures:
        raise Failure(
            f"raw_events {day}: " + "; ".join(failures) + ". The day keeps its previous events, the days "
            "before it in this run are stored, and the rejected rows (file, line, reason) are in table "
            "raw_event_rejects. Fix the source, or raise max_reject_share in the raw_events config, and "
            "run the range again: each day is replaced, never appended."
        )
    return warehouse.replace_partition_with_rows(
        "raw_events",
        day,
        clients_stream((client_id, events.accepted) for client_id, events in sources.items()),
        clients=clients,
    )


def _check_day(
    warehouse: Warehouse,
    day: dt.date,
    windows: dict[tuple[dt.datetime, dt.datetime], list[str]],
    names: list[str],
    checks: DayChecks,
) -> None:
    """The day's quality and volume checks over every client of the run: one query per time zone."""
    quality = pd.concat(
        [
            warehouse.query(
                "raw_events_quality",
                {
                    "partition_date": day,
                    "event_names": names,
                    "day_start": start,
                    "day_end": end,
                    "client_ids": client_ids,
                },
            )
            for (start, end), client_ids in windows.items()
        ]
    )
    client_ids = [client_id for ids in windows.values() for client_id in ids]
    # A one-client run says it as before clients existed; several name the client of each problem.
    problems = [
        ("" if len(client_ids) == 1 else f"{row.client_id}: ")
        + ", ".join(f"{key}: {int(getattr(row, key)):,}" for key in QUALITY_COUNTS if getattr(row, key))
        for row in quality.itertuples()
        if any(getattr(row, key) for key in QUALITY_COUNTS)
    ]
    checks.record(
        RAW_EVENTS_VALID,
        day,
        not problems,
        "; ".join(problems)
        or f"{int(quality['events'].sum()):,} events of {len(client_ids)} clients, all valid",
    )
    history = warehouse.query(
        "raw_events_volume", {"partition_date": day, "days": VOLUME_HISTORY_DAYS, "client_ids": client_ids}
    )
    events = dict(zip(quality["client_id"], quality["events"], strict=True))
    notes, passed = [], True
    for client_id in client_ids:
        earlier = history[history["client_id"] == client_id]
        if len(earlier) < VOLUME_MIN_HISTORY_DAYS:
            notes.append(f"{client_id}: only {len(earlier)} earlier days, no baseline yet")
            continue
        median = float(earlier["events"].median())
        count = int(events.get(client_id, 0))
        ratio = count / median if median else float("inf")
        ok = VOLUME_RATIO_RANGE[0] <= ratio <= VOLUME_RATIO_RANGE[1]
        passed &= ok
        notes.append(
            f"{client_id}: {count:,} events, {ratio:.2f}x the median of the {len(earlier)} days before"
        )
    checks.record(RAW_EVENTS_VOLUME, day, passed, "; ".join(notes))


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
    context: AssetExecutionContext,
    config: RawEventsConfig,
    warehouse: Warehouse,
    event_sources: EventSources,
    loyalty_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Tracking events of the day (view, click, cart, purchase, ...) of each client of the run, from the synthetic shop, event files or BigQuery."""
    settings = current_settings()
    clients = run_clients(context, loyalty_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    sources = {
        client.client_id: event_sources.for_client(configs[client.client_id], client.start(settings))
        for client in clients
    }
    warehouse.ensure_table("raw_events_table")
    warehouse.ensure_table("raw_event_rejects_table")
    # A source the warehouse cannot load (the BigQuery events table on DuckDB) fails the run before
    # any day is written.
    refused: dict[tuple[str, str], list[str]] = {}
    for client_id, source in sources.items():
        if (why := source.refusal(warehouse)) is not None:
            refused.setdefault((source.name, why), []).append(client_id)
    if refused:
        raise Failure(
            "; ".join(
                f'source "{name}" (clients {", ".join(ids)}) {why}' for (name, why), ids in refused.items()
            )
        )
    counts = DayCounts()
    from_table = [c for c in clients if isinstance(sources[c.client_id], TableSource)]
    from_rows = [c for c in clients if c not in from_table]
    checks = DayChecks()

    def load(day: dt.date) -> int:
        windows = grouped(clients, lambda client: day_window(day, client.zone(settings)))
        rows = 0
        for client in from_table:
            start, end = day_window(day, client.zone(settings))
            rows += sources[client.client_id].copy_day(warehouse, day, start, end, client.client_id)
        # A client's history starts on its first day: before it, its source is not read.
        started = [client for client in from_rows if client.start(settings) <= day]
        for batch in range(0, len(started), CLIENTS_PER_LOAD):
            batch_clients = started[batch : batch + CLIENTS_PER_LOAD]
            with ExitStack() as stack:
                source_limit = stack.enter_context(
                    warehouse.sharing_memory(settings.duckdb_memory_limit, len(batch_clients))
                )
                days = {
                    client.client_id: stack.enter_context(
                        day_events(
                            sources[client.client_id],
                            day,
                            client.zone(settings),
                            config.event_names,
                            settings.home / "tmp",
                            event_id_column=configs[client.client_id].event_id_column,
                            memory_limit=source_limit,
                        )
                    )
                    for client in batch_clients
                }
                rows += _store_day(context, warehouse, day, days, configs, counts)
        _check_day(warehouse, day, windows, config.event_names, checks)
        return rows

    rows = for_each_day(context, warehouse, load)
    last = max(rows)
    client_ids = [client.client_id for client in clients]
    by_name = warehouse.query("event_counts", {"partition_date": last, "client_ids": client_ids})
    rejected = pd.DataFrame(
        [
            (client_id, day, reason, n)
            for (client_id, day), reasons in sorted(counts.rejects.items())
            for reason, n in reasons.items()
        ],
        columns=["client_id", "day", "reason", "rows"],
    )
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "clients": MetadataValue.int(len(clients)),
            "source": MetadataValue.text(", ".join(sorted({configs[c].source for c in client_ids}))),
            "events_by_name": MetadataValue.md(markdown_table(by_name)),
            **chart_metadata(
                context.log,
                # One client's chart: the events of several shops on one chart would say little.
                {"event_volume_chart": lambda: event_volume_figure(by_name, last)}
                if len(clients) == 1
                else {},
            ),
            "rejected_rows": MetadataValue.int(int(rejected["rows"].sum())),
            "rejects": MetadataValue.md(markdown_table(rejected) if len(rejected) else "no rejected rows"),
            "duplicates_dropped": MetadataValue.int(sum(counts.duplicates.values())),
            "identical_rows_kept": MetadataValue.int(sum(counts.identical.values())),
        },
        check_results=checks.results(),
    )
