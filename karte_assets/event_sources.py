"""Where a client's raw events come from: the seam ``EventSource``, read for a run's range of days.

A ``RowSource`` (the synthetic shop, the user's Parquet/CSV files, or any other source that can put
a day's rows into DuckDB) is read through an in-memory DuckDB connection that types them to the
event schema (``sql/raw_events_table.sql``) and sorts out the rows that cannot be used, each with
its reason, file and line, so that bad input is counted and kept instead of dropped or crashing the day.
A ``TableSource`` (the existing BigQuery events table) is copied by the warehouse itself, which
says which tables it can read (``Warehouse.readable_event_tables``).

The event schema of a source file: ``user_id``, ``event_ts`` (a timestamp; naive ones are read as
UTC, a date alone as the start of that day in the configured time zone, digits alone as epoch
seconds or, from 12 digits on, milliseconds), ``event_name`` (view, click, cart, purchase, ...),
optional ``value`` (purchase amount), optional event id (``event_id``, or the column named by
``event_id_column``); any other column is kept in ``properties`` as JSON, the event id as ``event_id``.

Duplicates are judged by identity: rows with the same event id are one event sent twice, kept once
and counted. Without an id, identical rows are kept: two orders of the same amount on the same day
look exactly like a double-fired tag, and only an id tells them apart.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import duckdb
import pyarrow as pa

from karte_assets.duckdb_memory import DEFAULT_MEMORY_LIMIT, duckdb_config
from karte_assets.event_files import EventSourceError, SourceFiles, load_files, quoted
from karte_assets.partitions import day_window
from karte_assets.settings import BIGQUERY_EVENTS_TABLE, BIGQUERY_SOURCE, SYNTHETIC_SOURCE
from karte_assets.synthetic import SyntheticWorld, generate_day, with_products

if TYPE_CHECKING:
    from karte_assets.resources.warehouse import Warehouse

__all__ = [
    "BigQueryTableSource",
    "DayEvents",
    "EventSource",
    "EventSourceError",
    "FileSource",
    "RowSource",
    "SourceFiles",
    "SyntheticSource",
    "TableSource",
    "day_events",
    "range_events",
]

REQUIRED_COLUMNS = ("user_id", "event_ts", "event_name")
OPTIONAL_COLUMNS = ("value",)
EVENT_ID = "event_id"
# Columns the file readers add to every row: where it came from.
ORIGIN_COLUMNS = ("source_file", "source_line")
# Why a row is rejected, in the order the rules are applied: the first that matches wins.
REJECT_RULES = (
    ("missing user_id", "user_id IS NULL"),
    ("control character in user_id", "regexp_matches(user_id, '[[:cntrl:]]')"),
    ("missing event_ts", "raw_event_ts IS NULL"),
    ("unparseable event_ts", "ts IS NULL"),
    ("unknown event_name", "event_name IS NULL OR NOT list_contains($event_names, event_name)"),
    ("non-numeric value", "raw_value IS NOT NULL AND value IS NULL"),
    ("negative or NaN value", "isnan(value) OR value < 0"),
)

# DuckDB's names of the timestamp types a Parquet event_ts reads as (pandas writes nanoseconds).
NAIVE_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
AWARE_TIMESTAMP_TYPES = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ_NS")


def _timestamp(text: str) -> str:
    """SQL reading the text ``text`` of a timestamp in the forms real exports use (see the module doc)."""
    return f"""CASE
      WHEN regexp_full_match({text}, '[0-9]{{1,11}}') THEN to_timestamp(TRY_CAST({text} AS BIGINT))
      WHEN regexp_full_match({text}, '[0-9]{{12,14}}') THEN CAST(epoch_ms(TRY_CAST({text} AS BIGINT)) AS TIMESTAMPTZ)
      WHEN regexp_full_match({text}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')
        THEN timezone($timezone, CAST(TRY_CAST({text} AS DATE) AS TIMESTAMP))
      ELSE TRY_CAST({text} AS TIMESTAMPTZ)
    END"""


def _day_prefilter(event_ts_type: str, start: dt.datetime, end: dt.datetime) -> tuple[str, dict] | None:
    """A filter on the source's own ``event_ts`` that keeps exactly the rows the day can use.

    Only for a column that already is a timestamp: the filter then compares the column itself, so
    a Parquet scan skips the row groups (and files) outside the day by their min/max statistics
    instead of casting every row of every file a glob matches. Rows without a timestamp pass, as
    they must: every day reports them.
    """
    if event_ts_type in NAIVE_TIMESTAMP_TYPES:
        # Naive timestamps are UTC: compared with aware bounds, every row would be cast first.
        start, end = (instant.astimezone(dt.UTC).replace(tzinfo=None) for instant in (start, end))
    elif event_ts_type not in AWARE_TIMESTAMP_TYPES:
        return None
    return "event_ts IS NULL OR (event_ts >= $raw_start AND event_ts < $raw_end)", {
        "raw_start": start,
        "raw_end": end,
    }


def _classifying_select(
    types: dict[str, str], relation: str, event_id: str | None, prefilter: str | None = None
) -> str:
    columns = list(types)
    known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + ORIGIN_COLUMNS + ((event_id,) if event_id else ())
    extras = [c for c in columns if c not in known]
    # The event id is kept in properties as "event_id" whatever the source calls it, so that the
    # quality check (sql/raw_events_quality.sql) finds it under one name.
    fields = ([f"{EVENT_ID} := {quoted(event_id)}"] if event_id else []) + [
        f"{quoted(c)} := {quoted(c)}" for c in extras
    ]
    properties = (
        f"CAST(to_json(struct_pack({', '.join(fields)})) AS VARCHAR)" if fields else "CAST(NULL AS VARCHAR)"
    )
    has_value = "value" in columns
    is_timestamp = types["event_ts"] in NAIVE_TIMESTAMP_TYPES + AWARE_TIMESTAMP_TYPES
    ts = (
        "TRY_CAST(event_ts AS TIMESTAMPTZ)" if is_timestamp else _timestamp("TRIM(CAST(event_ts AS VARCHAR))")
    )
    origin = (
        ", ".join(ORIGIN_COLUMNS)
        if "source_file" in columns
        # Typed: several clients' rejects share one Arrow stream, whose types the first client's set.
        else "CAST(NULL AS VARCHAR) AS source_file, CAST(NULL AS BIGINT) AS source_line"
    )
    reasons = "\n".join(f"WHEN {condition} THEN '{reason}'" for reason, condition in REJECT_RULES)
    # Column names are quoted by quoted(); every value is a parameter.
    return f"""
        WITH typed AS (
          SELECT
            NULLIF(TRIM(CAST(user_id AS VARCHAR)), '') AS user_id,
            CAST(event_ts AS VARCHAR) AS raw_event_ts,
            {ts} AS ts,
            CAST(event_name AS VARCHAR) AS event_name,
            {"CAST(value AS VARCHAR)" if has_value else "CAST(NULL AS VARCHAR)"} AS raw_value,
            {"TRY_CAST(value AS DOUBLE)" if has_value else "CAST(0 AS DOUBLE)"} AS value,
            {f"NULLIF(TRIM(CAST({quoted(event_id)} AS VARCHAR)), '')" if event_id else "CAST(NULL AS VARCHAR)"} AS event_id,
            {properties} AS properties,
            {origin},
            CAST(NULL AS VARCHAR) AS raw_line  -- the text of a malformed line; these rows were read
          FROM {relation}
          {f"WHERE {prefilter}" if prefilter else ""}
        ),
        checked AS (
          SELECT *, CASE {reasons} END AS reject_reason, {_DAYS.format(ts="ts")} AS partition_date
          FROM typed
          WHERE ts IS NULL OR (ts >= $start AND ts < $end)
        )
        SELECT * EXCLUDE (raw_line), raw_line,
          -- The first copy of an event id on its day stays (the earliest, then the first in the files).
          reject_reason IS NULL AND event_id IS NOT NULL AND ROW_NUMBER() OVER (
            PARTITION BY partition_date, reject_reason IS NULL, event_id ORDER BY ts, source_file, source_line
          ) > 1 AS duplicate
        FROM checked
    """  # noqa: S608


# The local day of a row of the range: rows without a usable timestamp cannot be placed on a day,
# so every day of the range reports them (as a run of each day alone would).
_DAYS = "unnest(CASE WHEN {ts} IS NULL THEN $days ELSE [CAST(timezone($timezone, {ts}) AS DATE)] END)"


def _malformed_select(malformed: str) -> str:
    """The malformed lines the days report: those whose event_ts field still reads as a time of the range,
    on that day, and those where it does not (like rows without a usable timestamp, on every day)."""
    line_ts = _timestamp("TRIM(string_split(raw_line, delimiter)[ts_field], '\" ')")
    return f"""
        SELECT reason AS reject_reason, raw_line, source_file, source_line, FALSE AS duplicate,
          {_DAYS.format(ts="line_ts")} AS partition_date
        FROM (SELECT *, {line_ts} AS line_ts FROM {malformed})
        WHERE line_ts IS NULL OR (line_ts >= $start AND line_ts < $end)
    """  # noqa: S608


@dataclass(frozen=True)
class DayCounts:
    """What one day of a source read: every row (malformed lines and duplicates included), rejects by
    reason, duplicates of an event id dropped, identical rows without an id kept."""

    rows: int
    rejects: dict[str, int]
    duplicates: int
    identical: int


@dataclass
class DayEvents:
    """Days of a source: accepted rows, duplicates of an event id, and rejects with their reasons,
    each row on its day (``partition_date``). The counts without a day are of every day read."""

    connection: duckdb.DuckDBPyConnection
    source: str
    days: list[dt.date]

    def counts_by_day(self) -> dict[dt.date, DayCounts]:
        """Each day's counts, in two grouped queries whatever the number of days."""
        rows = self.connection.execute(
            "SELECT partition_date, reject_reason, count(*), count(*) FILTER (duplicate) "
            "FROM classified GROUP BY ALL"
        ).fetchall()
        identical = dict(
            self.connection.execute(
                "SELECT partition_date, count(*) - count(DISTINCT (user_id, ts, event_name, value, properties)) "
                "FROM classified WHERE reject_reason IS NULL AND event_id IS NULL GROUP BY partition_date"
            ).fetchall()
        )
        return {
            day: DayCounts(
                rows=sum(n for d, _, n, _ in rows if d == day),
                rejects={r: n for d, r, n, _ in sorted(rows, key=lambda row: str(row[1])) if d == day and r},
                duplicates=sum(dup for d, _, _, dup in rows if d == day),
                identical=identical.get(day, 0),
            )
            for day in self.days
        }

    def _count(self, condition: str) -> int:
        return self.connection.execute(f"SELECT count(*) FROM classified WHERE {condition}").fetchall()[0][0]  # noqa: S608

    def reject_counts(self) -> dict[str, int]:
        return dict(
            self.connection.execute(
                "SELECT reject_reason, count(*) FROM classified WHERE reject_reason IS NOT NULL GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        )

    def row_count(self) -> int:
        """Every row and malformed line the day read, duplicates included."""
        return self._count("TRUE")

    def duplicate_count(self) -> int:
        """Rows dropped as another copy of an event id already kept."""
        return self._count("duplicate")

    def identical_count(self) -> int:
        """Accepted rows without an event id that are exact copies of another: kept, but worth a look."""
        return self.connection.execute(
            "SELECT count(*) - count(DISTINCT (user_id, ts, event_name, value, properties)) "
            "FROM classified WHERE reject_reason IS NULL AND event_id IS NULL"
        ).fetchall()[0][0]

    def accepted(self, last: dt.date | None = None) -> pa.RecordBatchReader:
        """The rows to store, of every day (or the days up to ``last``)."""
        return self.connection.sql(
            "SELECT user_id, CAST(ts AS TIMESTAMP) AS event_ts, event_name, COALESCE(value, 0) AS value, properties, "
            "partition_date FROM classified WHERE reject_reason IS NULL AND NOT duplicate "
            "AND partition_date <= $last",
            params={"last": last or self.days[-1]},
        ).to_arrow_reader()

    def rejected(self, last: dt.date | None = None) -> pa.RecordBatchReader:
        """The rejected rows with their reasons, of every day (or the days up to ``last``)."""
        return self.connection.sql(
            "SELECT reject_reason, user_id, raw_event_ts AS event_ts, event_name, raw_value AS value, properties, "
            "$source AS source, source_file, source_line, raw_line, partition_date "
            "FROM classified WHERE reject_reason IS NOT NULL AND partition_date <= $last "
            "ORDER BY partition_date, source_file, source_line",
            params={"source": self.source, "last": last or self.days[-1]},
        ).to_arrow_reader()


def _event_id_column(columns: list[str], configured: str | None, source: str) -> str | None:
    if configured is None:
        return EVENT_ID if EVENT_ID in columns else None
    if configured not in columns:
        raise EventSourceError(
            f"event source {source!r} has no event id column {configured!r}; it has {columns}"
        )
    if configured != EVENT_ID and EVENT_ID in columns:
        raise EventSourceError(
            f"event source {source!r} has a column {EVENT_ID!r} besides the event id column {configured!r}: "
            "name one of them as event_id_column"
        )
    return configured


class EventSource(ABC):
    """One client's events: ``name`` is what metadata, rejects and errors call the source."""

    name: str

    def refusal(self, warehouse: Warehouse) -> str | None:
        """Why ``warehouse`` cannot load this source, or None."""
        return None


class RowSource(EventSource):
    """A source whose day of rows is read and classified in this process (``day_events``)."""

    @abstractmethod
    def load(self, connection: duckdb.DuckDBPyConnection, day: dt.date, timezone: str) -> SourceFiles:
        """Make the rows of local day ``day`` (at least; the classifier cuts the day) a relation of
        ``connection`` with the event schema's columns: ``user_id``, ``event_ts``, ``event_name``,
        optional ``value``, an optional event id, any other columns (kept as properties)."""

    def load_days(
        self, connection: duckdb.DuckDBPyConnection, days: Sequence[dt.date], timezone: str
    ) -> SourceFiles:
        """``load`` for several days at once: by default each day's rows in turn, into one table.
        A source that reads its whole history anyway (files) answers with one read."""
        if len(days) == 1:
            return self.load(connection, days[0], timezone)
        for number, day in enumerate(days):
            files = self.load(connection, day, timezone)
            select = f"SELECT * FROM {files.relation}"  # noqa: S608 (the source's own relation name)
            connection.execute(f"CREATE TEMP TABLE day_rows_{number} AS {select}", files.params)
        # BY NAME, so that a column all null on one day (typed NULL) takes its type from the others.
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM day_rows_{n}" for n in range(len(days)))  # noqa: S608
        connection.execute(f"CREATE TEMP VIEW days_rows AS {union}")  # noqa: S608 (our own names)
        return SourceFiles("days_rows", {})


@dataclass(frozen=True)
class SyntheticSource(RowSource):
    """The simulated shop of ``world``."""

    world: SyntheticWorld
    name: str = SYNTHETIC_SOURCE

    def load(self, connection, day, timezone):
        connection.register(
            "synthetic_events", with_products(self.world, day, generate_day(self.world, day, timezone))
        )
        return SourceFiles("synthetic_events", {})


@dataclass(frozen=True)
class FileSource(RowSource):
    """Parquet or CSV files: ``name`` is a path or glob (``event_files``)."""

    name: str
    csv_delimiter: str | None = None

    def load(self, connection, day, timezone):
        return load_files(connection, self.name, REQUIRED_COLUMNS, self.csv_delimiter)

    def load_days(self, connection, days, timezone):
        # One read of the files for the whole range: the classifier places each row on its day.
        return self.load(connection, days[0], timezone)


class TableSource(EventSource):
    """A source the warehouse copies a day of, in one statement, without this process reading rows.

    ``table`` names the table among those the warehouse declares it can read
    (``Warehouse.readable_event_tables``); ``unreadable`` says what a warehouse without it lacks.
    """

    table: ClassVar[str]
    unreadable: ClassVar[str]

    def refusal(self, warehouse: Warehouse) -> str | None:
        return None if self.table in warehouse.readable_event_tables else self.unreadable

    @abstractmethod
    def copy_day(
        self, warehouse: Warehouse, day: dt.date, start: dt.datetime, end: dt.datetime, client_id: str
    ) -> int:
        """Replace ``client_id``'s ``raw_events`` of ``day`` (the instants [start, end)); the rows written."""


@dataclass(frozen=True)
class BigQueryTableSource(TableSource):
    """The shop's existing events table in BigQuery (KARTE_BQ_EVENTS_TABLE, dev and prod)."""

    name: str = BIGQUERY_SOURCE
    table: ClassVar[str] = BIGQUERY_EVENTS_TABLE
    unreadable: ClassVar[str] = "reads KARTE_BQ_EVENTS_TABLE: it needs KARTE_ENV=dev or prod"

    def copy_day(self, warehouse, day, start, end, client_id):
        params = {"day_start": start, "day_end": end, "client_id": client_id}
        return warehouse.replace_partition("raw_events", day, "raw_events_from_table", params)


def day_events(
    source: RowSource,
    day: dt.date,
    timezone: str,
    event_names: Sequence[str],
    spill_directory: Path,
    event_id_column: str | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
):
    """The rows of local day ``day`` from ``source``, classified (``range_events`` of one day)."""
    return range_events(source, [day], timezone, event_names, spill_directory, event_id_column, memory_limit)


@contextmanager
def range_events(
    source: RowSource,
    days: Sequence[dt.date],
    timezone: str,
    event_names: Sequence[str],
    spill_directory: Path,
    event_id_column: str | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Iterator[DayEvents]:
    """The rows of the consecutive local days ``days`` from ``source``, read once and classified,
    each on its day: what reading each day alone would give, day by day."""
    days = sorted(days)
    start, end = day_window(days[0], timezone)[0], day_window(days[-1], timezone)[1]
    with duckdb.connect(config=duckdb_config(memory_limit, spill_directory)) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        params: dict[str, object] = {
            "start": start,
            "end": end,
            "days": days,
            "event_names": list(event_names),
            "timezone": timezone,
        }
        files = source.load_days(connection, days, timezone)
        described = connection.execute(f"DESCRIBE SELECT * FROM {files.relation}", files.params)  # noqa: S608
        types = {row[0]: row[1] for row in described.fetchall()}
        columns = [c for c in types if c not in ORIGIN_COLUMNS]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise EventSourceError(
                f"event source {source.name!r} lacks the columns {missing}; it has {columns}"
            )
        event_id = _event_id_column(columns, event_id_column, source.name)
        prefilter, prefilter_params = _day_prefilter(types["event_ts"], start, end) or (None, {})
        select = _classifying_select(types, files.relation, event_id, prefilter)
        if files.malformed:
            select = f"{select} UNION ALL BY NAME {_malformed_select(files.malformed)}"
        # DuckDB refuses parameters a statement does not use (the time zone only reads text timestamps).
        given = {**params, **files.params, **prefilter_params}
        connection.execute(
            f"CREATE TEMP TABLE classified AS {select}",
            {k: v for k, v in given.items() if re.search(rf"\${k}\b", select)},
        )
        yield DayEvents(connection, source.name, days)
