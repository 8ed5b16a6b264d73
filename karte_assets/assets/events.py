import datetime as dt
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import product

import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, ResourceParam
from pydantic import Field

from karte_assets.assets.checks import RAW_EVENTS_VALID, RAW_EVENTS_VOLUME, DayChecks, spec
from karte_assets.assets.common import (
    clients_stream,
    daily_asset,
    for_range,
    markdown_table,
    rows_metadata,
)
from karte_assets.clients import ClientRegistry, grouped, run_clients
from karte_assets.event_sources import DayEvents, TableSource, range_events
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
class RunCounts:
    """What the days of a run set aside: rejects by reason, dropped duplicates, identical rows kept
    (each by client, then day)."""

    rejects: dict[tuple[str, dt.date], dict[str, int]] = field(default_factory=dict)
    duplicates: dict[tuple[str, dt.date], int] = field(default_factory=dict)
    identical: dict[tuple[str, dt.date], int] = field(default_factory=dict)


# Clients whose days of events are read and written together: that many source connections are
# open at once, and a run of N clients is ceil(N / this) loads of events and of rejects.
CLIENTS_PER_LOAD = 50
# Days of a source read and written together: a backfill's fixed cost is paid once per this many
# days, while its rows (held by the source's connection, spilling past its memory limit) stay bounded.
DAYS_PER_LOAD = 31


def _store_days(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    days: list[dt.date],
    sources: dict[str, DayEvents],
    configs: dict[str, RawEventsConfig],
    counts: RunCounts,
) -> dict[dt.date, int]:
    """Keep the days' rejects of these clients; then replace the days' events of all of them (a
    stream of every client's rows, one statement), up to the first day on which a client has too
    many rejects: that day keeps its previous events, and the run fails naming it."""
    failures: dict[dt.date, list[str]] = {}
    for client_id, events in sources.items():
        config = configs[client_id]
        for day, found in events.counts_by_day().items():
            key = (client_id, day)
            counts.rejects[key], counts.duplicates[key] = found.rejects, found.duplicates
            counts.identical[key] = found.identical
            if found.identical:
                context.log.warning(
                    f"raw_events {day} client {client_id}: {found.identical:,} rows are exact copies of another "
                    "row and were kept: without an event id, two orders of one amount on one day look alike. If "
                    "the source has an id, name it as event_id_column and copies of one event are dropped instead."
                )
            total, rejected = found.rows, sum(found.rejects.values())
            if total and rejected / total > config.max_reject_share:
                listed = ", ".join(f"{reason}: {count:,}" for reason, count in found.rejects.items())
                # A one-client run says it as before clients existed; several name the client.
                failures.setdefault(day, []).append(
                    ("" if len(configs) == 1 else f"client {client_id}: ")
                    + f"{rejected:,} of {total:,} rows from {config.source!r} rejected "
                    f"({rejected / total:.1%}, over max_reject_share {config.max_reject_share:.1%}): {listed}"
                )
    failed = min(failures, default=None)
    clients = list(sources)
    warehouse.replace_partitions_with_rows(
        "raw_event_rejects",
        [day for day in days if failed is None or day <= failed],
        clients_stream(
            (client_id, lambda e=events: e.rejected(failed)) for client_id, events in sources.items()
        ),
        clients=clients,
    )
    stored = [day for day in days if failed is None or day < failed]
    written = (
        warehouse.replace_partitions_with_rows(
            "raw_events",
            stored,
            clients_stream(
                (client_id, lambda e=events: e.accepted(stored[-1])) for client_id, events in sources.items()
            ),
            clients=clients,
        )
        if stored
        else {}
    )
    if failed is not None:
        raise Failure(
            f"raw_events {failed}: "
            + "; ".join(failures[failed])
            + ". The day keeps its previous events, the "
            "days before it in this run are stored, and the rejected rows (file, line, reason) are in table "
            "raw_event_rejects. Fix the source, or raise max_reject_share in the raw_events config, and "
            "run the range again: each day is replaced, never appended."
        )
    return written


def _check_days(
    warehouse: Warehouse,
    days: list[dt.date],
    zones: dict[str, list[str]],
    names: list[str],
    checks: DayChecks,
) -> None:
    """The days' quality and volume checks over every client of the run: one grouped query per
    time zone and check, whatever the number of days; a result per day."""
    first, last = days[0], days[-1]
    range_params = {"first_date": first, "last_date": last, "event_names": names}
    quality = pd.concat(
        [
            warehouse.query(
                "raw_events_quality", {**range_params, "timezone": zone, "client_ids": client_ids}
            )
            for zone, client_ids in zones.items()
        ]
    )
    client_ids = [client_id for ids in zones.values() for client_id in ids]
    history = warehouse.query(
        "raw_events_volume",
        {"first_date": first, "last_date": last, "days": VOLUME_HISTORY_DAYS, "client_ids": client_ids},
    )
    for day in days:
        of_day = quality[quality["partition_date"] == pd.Timestamp(day)]
        # A one-client run says it as before clients existed; several name the client of each problem.
        problems = [
            ("" if len(client_ids) == 1 else f"{row.client_id}: ")
            + ", ".join(f"{key}: {int(getattr(row, key)):,}" for key in QUALITY_COUNTS if getattr(row, key))
            for row in of_day.itertuples()
            if any(getattr(row, key) for key in QUALITY_COUNTS)
        ]
        checks.record(
            RAW_EVENTS_VALID,
            day,
            not problems,
            "; ".join(problems)
            or f"{int(of_day['events'].sum()):,} events of {len(client_ids)} clients, all valid",
        )
        events = dict(zip(of_day["client_id"], of_day["events"], strict=True))
        window = (history["partition_date"] >= pd.Timestamp(day - dt.timedelta(days=VOLUME_HISTORY_DAYS))) & (
            history["partition_date"] < pd.Timestamp(day)
        )
        notes, passed = [], True
        for client_id in client_ids:
            earlier = history[window & (history["client_id"] == client_id)]
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
    counts = RunCounts()
    by_id = {client.client_id: client for client in clients}
    from_table = [c for c in clients if isinstance(sources[c.client_id], TableSource)]
    from_rows = [c for c in clients if c not in from_table]
    checks = DayChecks()

    def load(days: list[dt.date]) -> dict[dt.date, int]:
        rows = dict.fromkeys(days, 0)
        for client in from_table:
            for day in days:
                start, end = day_window(day, client.zone(settings))
                rows[day] += sources[client.client_id].copy_day(warehouse, day, start, end, client.client_id)
        # A client's history starts on its first day: before it, its source is not read. Clients
        # that start on the same day of the range are read together, up to DAYS_PER_LOAD days at once.
        starting = grouped(
            [client for client in from_rows if client.start(settings) <= days[-1]],
            lambda client: max(days[0], client.start(settings)),
        )
        for first, client_ids in sorted(starting.items()):
            from_first = [day for day in days if day >= first]
            # Oldest days first, every client's: a day that fails leaves the days before it stored.
            for chunk, batch in product(
                range(0, len(from_first), DAYS_PER_LOAD), range(0, len(client_ids), CLIENTS_PER_LOAD)
            ):
                read_days = from_first[chunk : chunk + DAYS_PER_LOAD]
                batch_clients = [
                    by_id[client_id] for client_id in client_ids[batch : batch + CLIENTS_PER_LOAD]
                ]
                with ExitStack() as stack:
                    source_limit = stack.enter_context(
                        warehouse.sharing_memory(settings.duckdb_memory_limit, len(batch_clients))
                    )
                    read = {
                        client.client_id: stack.enter_context(
                            range_events(
                                sources[client.client_id],
                                read_days,
                                client.zone(settings),
                                config.event_names,
                                settings.home / "tmp",
                                event_id_column=configs[client.client_id].event_id_column,
                                memory_limit=source_limit,
                            )
                        )
                        for client in batch_clients
                    }
                    for day, written in _store_days(
                        context, warehouse, read_days, read, configs, counts
                    ).items():
                        rows[day] += written
        _check_days(warehouse, days, grouped(clients, lambda c: c.zone(settings)), config.event_names, checks)
        return rows

    rows = for_range(context, warehouse, load)
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
