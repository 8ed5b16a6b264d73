"""Where raw events come from locally: the synthetic shop, or the user's Parquet/CSV files.

Either way the day's rows are read through an in-memory DuckDB connection that types them to the
event schema (``sql/raw_events_table.sql``) and sorts out the rows that cannot be used, each with
its reason, so that bad input is counted and kept instead of dropped or crashing the day.

The event schema of a source file: ``user_id``, ``event_ts`` (a timestamp; naive ones are read as
UTC), ``event_name`` (view, click, cart, purchase, ...), optional ``value`` (purchase amount);
any other column is kept in ``properties`` as JSON.
"""

import datetime as dt
import glob
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from karte_assets.partitions import day_window
from karte_assets.synthetic import SyntheticWorld, generate_day

REQUIRED_COLUMNS = ("user_id", "event_ts", "event_name")
OPTIONAL_COLUMNS = ("value",)
EVENT_COLUMNS = ("user_id", "event_ts", "event_name", "value", "properties")
# Why a row is rejected, in the order the rules are applied: the first that matches wins.
REJECT_RULES = (
    ("missing user_id", "user_id IS NULL"),
    ("missing event_ts", "raw_event_ts IS NULL"),
    ("unparseable event_ts", "ts IS NULL"),
    ("unknown event_name", "event_name IS NULL OR NOT list_contains($event_names, event_name)"),
    ("non-numeric value", "raw_value IS NOT NULL AND value IS NULL"),
    ("negative or NaN value", "isnan(value) OR value < 0"),
    ("duplicate", "copy > 1"),
)

# DuckDB's names of the timestamp types a Parquet event_ts reads as (pandas writes nanoseconds).
NAIVE_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
AWARE_TIMESTAMP_TYPES = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ_NS")


class EventSourceError(ValueError):
    """An event source that cannot be read as the event schema."""


def _quoted(column: str) -> str:
    # Column names of a user's file become identifiers in SQL: refuse any that could escape quoting.
    if not column or '"' in column or not column.isprintable():
        raise EventSourceError(f"column name {column!r} is not usable")
    return f'"{column}"'


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


def _classifying_select(columns: list[str], relation: str, prefilter: str | None = None) -> str:
    extras = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    has_value = "value" in columns
    properties = (
        "CAST(to_json(struct_pack("
        + ", ".join(f"{_quoted(c)} := {_quoted(c)}" for c in extras)
        + ")) AS VARCHAR)"
        if extras
        else "CAST(NULL AS VARCHAR)"
    )
    reasons = "\n".join(f"WHEN {condition} THEN '{reason}'" for reason, condition in REJECT_RULES)
    # Column names are quoted by _quoted; every value is a parameter.
    return f"""
        WITH typed AS (
          SELECT
            NULLIF(TRIM(CAST(user_id AS VARCHAR)), '') AS user_id,
            CAST(event_ts AS VARCHAR) AS raw_event_ts,
            TRY_CAST(event_ts AS TIMESTAMPTZ) AS ts,
            CAST(event_name AS VARCHAR) AS event_name,
            {"CAST(value AS VARCHAR)" if has_value else "CAST(NULL AS VARCHAR)"} AS raw_value,
            {"TRY_CAST(value AS DOUBLE)" if has_value else "CAST(0 AS DOUBLE)"} AS value,
            {properties} AS properties
          FROM {relation}
          {f"WHERE {prefilter}" if prefilter else ""}
        ),
        in_day AS (
          -- Rows without a usable timestamp cannot be placed on a day: every day that reads them reports them.
          SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id, ts, event_name, value, properties) AS copy
          FROM typed
          WHERE ts IS NULL OR (ts >= $start AND ts < $end)
        )
        SELECT *, CASE {reasons} END AS reject_reason FROM in_day
    """  # noqa: S608


def _file_relation(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        return "read_parquet($path, union_by_name = true)"
    if lowered.endswith(".csv") or lowered.endswith(".csv.gz"):
        # Read every column as text: typing is ours, so a bad value is a reject, not a crash.
        return "read_csv($path, union_by_name = true, all_varchar = true)"
    raise EventSourceError(f"event source {path!r} must name .parquet or .csv files")


@dataclass
class DayEvents:
    """One day of a source, sorted into accepted rows and rejected rows with their reasons."""

    connection: duckdb.DuckDBPyConnection
    source: str

    def reject_counts(self) -> dict[str, int]:
        return dict(
            self.connection.execute(
                "SELECT reject_reason, count(*) FROM classified WHERE reject_reason IS NOT NULL GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        )

    def row_count(self) -> int:
        return self.connection.execute("SELECT count(*) FROM classified").fetchall()[0][0]

    def accepted(self) -> pa.RecordBatchReader:
        return self.connection.sql(
            "SELECT user_id, CAST(ts AS TIMESTAMP) AS event_ts, event_name, COALESCE(value, 0) AS value, properties "
            "FROM classified WHERE reject_reason IS NULL"
        ).to_arrow_reader()

    def rejected(self) -> pa.RecordBatchReader:
        return self.connection.sql(
            "SELECT reject_reason, user_id, raw_event_ts AS event_ts, event_name, raw_value AS value, properties, "
            "$source AS source FROM classified WHERE reject_reason IS NOT NULL",
            params={"source": self.source},
        ).to_arrow_reader()


@contextmanager
def day_events(
    source: str,
    day: dt.date,
    timezone: str,
    world: SyntheticWorld,
    event_names: Sequence[str],
    spill_directory: Path,
) -> Iterator[DayEvents]:
    """The rows of local day ``day`` from ``source`` ("synthetic", or a file path or glob)."""
    start, end = day_window(day, timezone)
    spill_directory.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(config={"temp_directory": str(spill_directory)}) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        params: dict[str, object] = {"start": start, "end": end, "event_names": list(event_names)}
        if source == "synthetic":
            frame = generate_day(world, day, timezone)
            connection.register("synthetic_events", frame)
            relation, relation_params = "synthetic_events", {}
        else:
            if not glob.glob(source):
                raise EventSourceError(f"event source {source!r} matches no file")
            relation, relation_params = _file_relation(source), {"path": source}
        described = connection.execute(f"DESCRIBE SELECT * FROM {relation}", relation_params)  # noqa: S608
        types = {row[0]: row[1] for row in described.fetchall()}
        columns = list(types)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise EventSourceError(f"event source {source!r} lacks the columns {missing}; it has {columns}")
        prefilter, prefilter_params = _day_prefilter(types["event_ts"], start, end) or (None, {})
        connection.execute(
            f"CREATE TEMP TABLE classified AS {_classifying_select(columns, relation, prefilter)}",
            {**params, **relation_params, **prefilter_params},
        )
        yield DayEvents(connection, source)
