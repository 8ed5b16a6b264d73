"""Where raw events come from locally: the synthetic shop, or the user's Parquet/CSV files.

Either way the day's events are read through an in-memory DuckDB connection that normalises them
to the event schema (``sql/raw_events_table.sql``) and streams them as Arrow batches, so a large
file is filtered to the partition's day without being loaded whole.

The event schema of a source file: ``user_id``, ``event_ts`` (a timestamp; naive ones are read as
UTC), ``event_name`` (view, click, cart, purchase, ...), optional ``value`` (purchase amount);
any other column is kept in ``properties`` as JSON.
"""

from __future__ import annotations

import datetime as dt
import glob
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from karte_assets.partitions import day_window
from karte_assets.synthetic import SyntheticWorld, generate_day

REQUIRED_COLUMNS = ("user_id", "event_ts", "event_name")
OPTIONAL_COLUMNS = ("value",)


class EventSourceError(ValueError):
    """An event source that cannot be read as the event schema."""


def _quoted(column: str) -> str:
    # Column names of a user's file become identifiers in SQL: refuse any that could escape quoting.
    if not column or '"' in column or not column.isprintable():
        raise EventSourceError(f"column name {column!r} is not usable")
    return f'"{column}"'


def _normalising_select(columns: list[str], relation: str) -> str:
    extras = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    value = "CAST(COALESCE(value, 0) AS DOUBLE)" if "value" in columns else "CAST(0 AS DOUBLE)"
    properties = (
        "CAST(to_json(struct_pack("
        + ", ".join(f"{_quoted(c)} := {_quoted(c)}" for c in extras)
        + ")) AS VARCHAR)"
        if extras
        else "CAST(NULL AS VARCHAR)"
    )
    # Column names are quoted by _quoted; every value is a parameter.
    return f"""
        SELECT
          CAST(user_id AS VARCHAR) AS user_id,
          CAST(CAST(event_ts AS TIMESTAMPTZ) AS TIMESTAMP) AS event_ts,
          CAST(event_name AS VARCHAR) AS event_name,
          {value} AS value,
          {properties} AS properties
        FROM {relation}
        WHERE CAST(event_ts AS TIMESTAMPTZ) >= $start AND CAST(event_ts AS TIMESTAMPTZ) < $end
    """  # noqa: S608


def _file_relation(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        return "read_parquet($path, union_by_name = true)"
    if lowered.endswith(".csv") or lowered.endswith(".csv.gz"):
        return "read_csv($path, union_by_name = true)"
    raise EventSourceError(f"event source {path!r} must name .parquet or .csv files")


@contextmanager
def day_events(
    source: str, day: dt.date, timezone: str, world: SyntheticWorld
) -> Iterator[pa.RecordBatchReader]:
    """The events of local day ``day`` from ``source`` ("synthetic", or a file path or glob)."""
    start, end = day_window(day, timezone)
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        params: dict[str, object] = {"start": start, "end": end}
        if source == "synthetic":
            frame = generate_day(world, day, timezone)
            connection.register("synthetic_events", frame)
            relation, columns = "synthetic_events", list(frame.columns)
        else:
            if not glob.glob(source):
                raise EventSourceError(f"event source {source!r} matches no file")
            relation = _file_relation(source)
            params["path"] = source
            described = connection.execute(f"DESCRIBE SELECT * FROM {relation}", {"path": source})  # noqa: S608
            columns = [row[0] for row in described.fetchall()]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise EventSourceError(f"event source {source!r} lacks the columns {missing}; it has {columns}")
        yield connection.sql(_normalising_select(columns, relation), params=params).to_arrow_reader()
