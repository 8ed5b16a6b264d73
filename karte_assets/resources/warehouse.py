"""The warehouse seam: where tables live and the feature SQL runs.

Every write replaces one day partition of one table for the clients of the write (every table has
a ``client_id`` column: clients share tables, never rows), inside a transaction, so a re-run never
duplicates rows, a failed write leaves the previous contents in place, and a write never touches
the rows of a client it was not given; a row of another client in its input is an error.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb
import pandas as pd
import pyarrow as pa
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from karte_assets.clients import DEFAULT_CLIENT, checked_client_id
from karte_assets.duckdb_memory import DEFAULT_MEMORY_LIMIT, duckdb_config, memory_limit_bytes, share
from karte_assets.settings import DEFAULT_SNAPSHOT_RETENTION_DAYS
from karte_assets.sql import bind, duckdb_sql
from karte_assets.training.uris import GS_SCHEME, parquet_files, read_parquet, write_parquet

Rows = pd.DataFrame | pa.Table | pa.RecordBatchReader
# Every partition write is logged in the same transaction, so an empty partition still counts
# as materialised and one can see when each was last written.
_PARTITION_LOG_DDL = """
CREATE TABLE IF NOT EXISTS partition_log (
  table_name VARCHAR, client_id VARCHAR NOT NULL, partition_date DATE, row_count BIGINT, written_at TIMESTAMP,
  PRIMARY KEY (table_name, client_id, partition_date)
)"""
# Timestamps are stored as UTC; naive timestamps in source files are read as UTC.
_TIMEZONE = "SET TimeZone = 'UTC'"
# The one client of a write, for rows that do not name it (a single shop's rows, as before clients).
ONE_CLIENT = (DEFAULT_CLIENT,)
# Per-day full snapshots: every day holds every user, so old days expire (``snapshot_retention_days``).
SNAPSHOT_TABLES = frozenset({"user_profile", "user_features", "loyalty_training_set", "loyalty_raw_scores"})


@dataclass(frozen=True)
class Retention:
    """How long a snapshot table keeps its days: ``days`` before the newest day written, and none
    from ``run_first_day`` on. A single-run backfill writes user_profile's 273 days before
    user_features reads day 1 of them: expiring by the newest day alone emptied every day the
    retention did not reach and restarted the carried windows there."""

    days: int
    run_first_day: dt.date | None = None

    def oldest_kept(self, newest_written: dt.date) -> dt.date:
        oldest = newest_written - dt.timedelta(days=self.days)
        return min(oldest, self.run_first_day) if self.run_first_day else oldest


# Run locks this process holds: lock file -> (run id, file descriptor).
_RUN_LOCKS: dict[str, tuple[str, int]] = {}
# The file name of a local export; BigQuery names its files by a wildcard (bigquery_warehouse.py).
EXPORT_FILE = "part-0.parquet"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def checked_identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier; identifiers cannot be query parameters."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid table name")
    return name


class Warehouse(ConfigurableResource, ABC):
    """Runs the named queries of ``karte_assets/sql`` and owns every table's day partitions."""

    # The events tables the warehouse reads itself (event_sources.TableSource.table): an event
    # source that needs one it lacks is refused before any write, naming what it needs.
    readable_event_tables: ClassVar[frozenset[str]] = frozenset()
    snapshot_retention_days: int = Field(
        default=DEFAULT_SNAPSHOT_RETENTION_DAYS,
        ge=1,
        description="Days a per-day snapshot (user_profile, user_features, loyalty_training_set) is kept "
        "(KARTE_SNAPSHOT_RETENTION_DAYS); must cover the training set's snapshot window.",
    )

    def hold_for_run(self, run_id: str, log: logging.Logger, first_day: dt.date | None = None) -> None:
        """Wait until no other run writes this warehouse, then keep it for run ``run_id``.

        Each write is atomic, but two runs of the same days would otherwise interleave theirs
        (one's events, the other's features). Where runs execute on other machines, the run
        queue's concurrency limits do this instead, and this does nothing. ``first_day``, the run's
        oldest day: no snapshot day from it on expires while the run writes (a range run writes one
        asset's days before the next asset reads them).
        """

    @contextmanager
    def labelled(self, labels: Mapping[str, str]) -> Iterator[None]:
        """The warehouse jobs issued inside carry ``labels`` (BigQuery job labels, for cost per
        asset and run); the local warehouse runs no jobs and ignores them."""
        yield

    @contextmanager
    def sharing_memory(self, memory_limit: str, databases: int) -> Iterator[str]:
        """The memory_limit of each of ``databases`` local DuckDB databases opened beside the warehouse
        (raw_events' event sources) so that together they stay within ``memory_limit``: here they
        split it, a remote warehouse using none of this machine's memory."""
        yield share(memory_limit, databases)

    @abstractmethod
    def ensure_table(self, ddl_name: str) -> None:
        """Create a declared table (``sql/<ddl_name>.sql``) if it does not exist yet."""

    @abstractmethod
    def replace_partition(
        self, table: str, day: dt.date, query_name: str, params: Mapping[str, object] | None = None
    ) -> int:
        """Atomically replace the rows of ``table``'s partition ``day`` of the clients
        ``params["client_ids"]`` (default: the one client ``default``) with a named query's rows."""

    @abstractmethod
    def replace_partition_with_rows(
        self, table: str, day: dt.date, rows: Rows, clients: Sequence[str] = ONE_CLIENT
    ) -> int:
        """Atomically replace the rows of ``clients`` in ``table``'s partition ``day`` with rows
        computed outside SQL; rows without a ``client_id`` column belong to the one client given."""

    @abstractmethod
    def replace_partitions(
        self, table: str, days: Sequence[dt.date], query_name: str, params: Mapping[str, object] | None = None
    ) -> dict[dt.date, int]:
        """``replace_partition`` for the consecutive ``days`` at once, from a range query: one that
        reads ``@first_date`` to ``@last_date`` and gives each row its ``partition_date``. Each day is
        replaced whole or not at all (a reader sees it old or new, never half); the rows per day."""

    @abstractmethod
    def replace_partitions_with_rows(
        self, table: str, days: Sequence[dt.date], rows: Rows, clients: Sequence[str] = ONE_CLIENT
    ) -> dict[dt.date, int]:
        """``replace_partition_with_rows`` for the consecutive ``days`` at once: each row has a
        ``partition_date`` among them. Each day is replaced whole or not at all; the rows per day."""

    @abstractmethod
    def query(self, query_name: str, params: Mapping[str, object] | None = None) -> pd.DataFrame:
        """The result of a named query, for small results (summaries, one day's scores)."""

    @abstractmethod
    def query_arrow(self, query_name: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """The result of a named query as Arrow, for handing data to another process."""

    def partition_exists(self, table: str, day: dt.date, client_id: str = DEFAULT_CLIENT) -> bool:
        """Whether ``table`` has a materialised partition ``day`` (possibly with zero rows) for ``client_id``."""
        return client_id in self.logged_clients(table, day, [client_id])

    def logged_clients(self, table: str, day: dt.date, client_ids: Sequence[str]) -> set[str]:
        """The clients of ``client_ids`` for which ``table``'s partition ``day`` was written."""
        found = self.query(
            "partition_logged", {"table_name": table, "partition_date": day, "client_ids": list(client_ids)}
        )
        return set(found["client_id"])

    @abstractmethod
    def export_query(self, query_name: str, params: Mapping[str, object], destination_prefix: str) -> str:
        """Write the rows of a named query as Parquet file(s) under ``destination_prefix`` (a folder
        or ``gs://bucket/folder/``) and return that prefix. The rows go from the warehouse to the
        files directly: at production scale nothing the size of the result passes through here."""

    @abstractmethod
    def replace_partition_from_files(
        self, table: str, day: dt.date, prefix: str, clients: Sequence[str] = ONE_CLIENT
    ) -> int:
        """Atomically replace the rows of ``clients`` in ``table``'s partition ``day`` with the rows
        of the Parquet files under ``prefix``; each row has a ``partition_date`` column equal to ``day``."""


class DuckDBWarehouse(Warehouse):
    """The local default: one DuckDB file; each table has a ``partition_date`` column.

    A run opens one connection when it takes the warehouse (``hold_for_run``) and keeps it until
    the run ends: opening the file costs tens of milliseconds, which a backfill would otherwise
    pay for every statement of every day. Another process that opens the file (``make report``,
    a notebook) therefore waits for the run to end, as a second run already does. Outside a run
    each operation opens its own connection; a file locked by another process is waited for, up
    to ``lock_timeout_seconds``.
    """

    path: str
    lock_timeout_seconds: float = 600.0
    _run_connection: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _run_columns: dict[str, set[str]] = PrivateAttr(default_factory=dict)
    _lent_memory_limit: str | None = PrivateAttr(default=None)
    _run_first_day: dt.date | None = PrivateAttr(default=None)
    memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="Most memory a connection may use, a share of the machine ('10%') or a size ('2GB') "
        "(KARTE_DUCKDB_MEMORY_LIMIT); beyond it DuckDB spills to temp_directory.",
    )
    temp_directory: str = Field(
        default="",
        description="Where DuckDB spills; default: tmp beside the warehouse file ($KARTE_HOME/tmp).",
    )

    def _open(self) -> duckdb.DuckDBPyConnection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        config = duckdb_config(
            self._lent_memory_limit or self.memory_limit,
            Path(self.temp_directory or Path(self.path).parent / "tmp"),
        )
        deadline = time.monotonic() + self.lock_timeout_seconds
        while True:
            try:
                connection = duckdb.connect(self.path, config=config)
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.25)
        try:
            connection.execute(_TIMEZONE)
            connection.execute(_PARTITION_LOG_DDL)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def sharing_memory(self, memory_limit: str, databases: int) -> Iterator[str]:
        """The warehouse keeps half of ``memory_limit`` while the ``databases`` share the other half:
        each database of the process is capped, but two caps of the whole made raw_events the peak
        of a large day (BENCHMARKS.md, bounded memory)."""
        half = share(memory_limit, 2)
        self._set_memory_limit(half)
        try:
            yield share(memory_limit, 2 * databases)
        finally:
            self._set_memory_limit(None)

    def _set_memory_limit(self, limit: str | None) -> None:
        self._lent_memory_limit = limit
        if self._run_connection is not None:
            # A size computed above, not a value from outside: SET takes no query parameters.
            mib = memory_limit_bytes(limit or self.memory_limit) // 2**20
            self._run_connection.execute(f"SET memory_limit = '{mib}MiB'")

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the run's connection while a run holds the warehouse (its own results and
        registered frames, released after the operation), else a connection for this operation."""
        if self._run_connection is not None:
            cursor = self._run_connection.cursor()
            try:
                cursor.execute(_TIMEZONE)
                yield cursor
            finally:
                cursor.close()
            return
        connection = self._open()
        try:
            yield connection
        finally:
            connection.close()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._run_connection is not None:
            self._run_connection.close()
            self._run_connection = None
            self._run_columns.clear()

    def hold_for_run(self, run_id: str, log: logging.Logger, first_day: dt.date | None = None) -> None:
        self._run_first_day = first_day
        path = f"{self.path}.run-lock"
        held = _RUN_LOCKS.get(path)
        if held and held[0] == run_id:
            self._keep_connection()
            return
        if held:
            # In-process runs (tests, materialize()) follow one another: the earlier one is over.
            os.close(held[1])
            del _RUN_LOCKS[path]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_timeout_seconds
        waited = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(lock)
                    raise TimeoutError(
                        f"another run held {self.path} for over {self.lock_timeout_seconds:.0f}s"
                    ) from None
                if not waited:
                    log.info(
                        f"waiting for run {Path(path).read_text().strip() or '?'} to finish with {self.path}"
                    )
                    waited = True
                time.sleep(0.2)
        os.ftruncate(lock, 0)
        os.write(lock, run_id.encode())
        # Held until this process ends (a run's own process) or starts its next run.
        _RUN_LOCKS[path] = (run_id, lock)
        self._keep_connection()

    def _keep_connection(self) -> None:
        if self._run_connection is None:
            self._run_connection = self._open()

    def ensure_table(self, ddl_name: str) -> None:
        with self.connect() as connection:
            connection.execute(duckdb_sql(ddl_name))

    def replace_partition(self, table, day, query_name, params=None):
        if params is None:
            params = {}
        select = duckdb_sql(query_name)
        bound = {**bind(query_name, {**params, "partition_date": day}), "partition_date": day}
        clients = write_scope(bound)
        with self.connect() as connection:
            written = _replace(
                connection, table, select, bound, self._retention(table), clients, self._run_columns_or_none()
            )
        return written[day]

    def replace_partition_with_rows(self, table, day, rows, clients=ONE_CLIENT):
        with self.connect() as connection:
            connection.register("incoming_rows", rows)
            written = _replace(
                connection,
                table,
                "SELECT * FROM incoming_rows",
                {"partition_date": day},
                self._retention(table),
                clients,
                self._run_columns_or_none(),
            )
        return written[day]

    def replace_partitions(self, table, days, query_name, params=None):
        days = consecutive_days(days)
        bound = bind(query_name, {**(params or {}), "first_date": days[0], "last_date": days[-1]})
        with self.connect() as connection:
            return _replace(
                connection,
                table,
                duckdb_sql(query_name),
                bound,
                self._retention(table),
                write_scope(bound),
                self._run_columns_or_none(),
                days,
            )

    def replace_partitions_with_rows(self, table, days, rows, clients=ONE_CLIENT):
        with self.connect() as connection:
            connection.register("incoming_rows", rows)
            return _replace(
                connection,
                table,
                "SELECT * FROM incoming_rows",
                {},
                self._retention(table),
                clients,
                self._run_columns_or_none(),
                consecutive_days(days),
            )

    def query(self, query_name, params=None):
        if params is None:
            params = {}
        with self.connect() as connection:
            return connection.execute(duckdb_sql(query_name), bind(query_name, params or {})).df()

    def query_arrow(self, query_name, params=None):
        if params is None:
            params = {}
        with self.connect() as connection:
            return connection.sql(
                duckdb_sql(query_name), params=bind(query_name, params or {})
            ).to_arrow_table()

    def _run_columns_or_none(self) -> dict[str, set[str]] | None:
        """The columns of the tables written in this run (only the run writes while it holds the
        warehouse); None outside a run, where another process may have changed them."""
        return self._run_columns if self._run_connection is not None else None

    def _retention(self, table: str) -> Retention | None:
        if table not in SNAPSHOT_TABLES:
            return None
        return Retention(self.snapshot_retention_days, self._run_first_day if self._run_connection else None)

    def export_query(self, query_name, params, destination_prefix):
        select, bound = duckdb_sql(query_name), bind(query_name, dict(params))
        if destination_prefix.startswith(GS_SCHEME):
            # Cloud Storage (a local warehouse with the GCS model store): DuckDB cannot reach the
            # bucket with ADC, so the rows pass through here, as they may on the local path.
            write_parquet(f"{destination_prefix}{EXPORT_FILE}", self.query_arrow(query_name, params))
            return destination_prefix
        Path(destination_prefix).mkdir(parents=True, exist_ok=True)
        target = str(Path(destination_prefix) / EXPORT_FILE).replace("'", "''")
        with self.connect() as connection:
            connection.execute(f"COPY ({select}) TO '{target}' (FORMAT PARQUET)", bound)
        return destination_prefix

    def replace_partition_from_files(self, table, day, prefix, clients=ONE_CLIENT):
        files = parquet_files(prefix)
        with self.connect() as connection:
            if prefix.startswith(GS_SCHEME):
                connection.register("incoming_files", pa.concat_tables(read_parquet(f) for f in files))
                source, params = "incoming_files", {}
            else:
                source, params = "read_parquet($files)", {"files": files}
            # As a BigQuery load into a partition decorator: a row of another day is an error.
            outside = connection.execute(
                f"SELECT count(*) FROM {source} WHERE partition_date IS DISTINCT FROM $day",  # noqa: S608
                {**params, "day": day},
            ).fetchall()[0][0]
            if outside:
                raise ValueError(f"{outside} rows under {prefix} do not belong to {table}'s partition {day}")
            select = f"SELECT * EXCLUDE (partition_date) FROM {source}"  # noqa: S608
            written = _replace(
                connection,
                table,
                select,
                {**params, "partition_date": day},
                self._retention(table),
                clients,
                self._run_columns_or_none(),
            )
        return written[day]


def _used(sql: str, params: Mapping[str, object]) -> dict[str, object]:
    """The parameters ``sql`` names: DuckDB refuses a prepared statement given any other."""
    return {key: value for key, value in params.items() if re.search(rf"\${key}\b", sql)}


def _table_exists(connection: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = $table",
            {"table": table},
        ).fetchall()[0][0]
    )


def _add_new_columns(
    connection: duckdb.DuckDBPyConnection,
    target: str,
    existing: set[str],
    select: str,
    params: Mapping[str, object],
) -> set[str]:
    """Add to ``target`` the columns ``select`` has and it lacks, as BigQuery's ALLOW_FIELD_ADDITION
    does for our writes: a table made by an earlier version keeps working, its old rows null there.
    Returns the table's columns afterwards."""
    connection.execute(f"SELECT * FROM ({select}) AS q LIMIT 0", params)  # noqa: S608 (our own SQL)
    columns = set(existing)
    for name, kind, *_ in connection.description:
        if name not in columns:
            connection.execute(f'ALTER TABLE {target} ADD COLUMN "{name}" {kind}')
            columns.add(name)
    return columns


def write_scope(bound: Mapping[str, object]) -> list[str]:
    """The clients a named query's write covers: its ``@client_ids``, its one ``@client_id``, or
    the client ``default`` for a query that names none."""
    if "client_ids" in bound:
        return list(bound["client_ids"])
    if "client_id" in bound:
        return [bound["client_id"]]
    return list(ONE_CLIENT)


def scoped_select(select: str, columns: Sequence[str], clients: Sequence[str]) -> tuple[str, str]:
    """``select`` with ``client_id`` checked against the write's clients (or, where the rows do not
    name their client, set to the one client), and the SQL condition of those clients' rows, both
    over the parameter ``$write_clients``. DuckDB's ``error()`` fails the write on a stray row."""
    if "client_id" in columns:
        check = (
            "CASE WHEN q.client_id IN (SELECT unnest($write_clients)) THEN q.client_id "
            "ELSE error('row of client ' || coalesce(q.client_id, 'NULL') || ' outside the clients of this write') END"
        )
        return (
            f"SELECT * REPLACE ({check} AS client_id) FROM ({select}) AS q",  # noqa: S608 (checked identifiers, our own SQL)
            "client_id IN (SELECT unnest($write_clients))",
        )  # noqa: S608
    if len(clients) != 1:
        raise ValueError(
            f"rows without a client_id column cannot be written for several clients {list(clients)}"
        )
    return (
        f"SELECT $write_clients[1] AS client_id, q.* FROM ({select}) AS q",  # noqa: S608 (checked identifiers, our own SQL)
        "client_id IN (SELECT unnest($write_clients))",
    )  # noqa: S608


def consecutive_days(days: Sequence[dt.date]) -> list[dt.date]:
    """``days`` in order, if they are one or more consecutive days (a range write's days)."""
    ordered = sorted(days)
    if not ordered or any((b - a).days != 1 for a, b in zip(ordered, ordered[1:], strict=False)):
        raise ValueError(f"a range write needs consecutive days, not {[str(d) for d in ordered]}")
    return ordered


def _replace(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    select: str,
    params: Mapping[str, object],
    retention: Retention | None,
    clients: Sequence[str],
    known_columns: dict[str, set[str]] | None = None,
    days: Sequence[dt.date] | None = None,
) -> dict[dt.date, int]:
    """Replace the rows of ``clients`` in day partitions in one transaction; the rows per day.

    Without ``days``, the one day ``params["partition_date"]``, stamped on ``select``'s rows; with
    them, ``select``'s rows carry their ``partition_date``, and one outside ``days`` fails the write.
    With ``retention``, drop the days older than its days before the newest day written, but none
    from the holding run's first day on (BigQuery's partition expiration counts from today instead:
    the local graph's days are often far from today, so the written day is the clock here). ``known_columns`` (table -> columns) spares the catalog
    look-ups on a connection that has written the table before."""
    target = checked_identifier(table)
    clients = [checked_client_id(client) for client in clients]
    if days is None:
        days = [params["partition_date"]]
        stamp = "CAST($partition_date AS DATE) AS partition_date, s.*"
    else:
        stamp = (
            "* REPLACE (CASE WHEN s.partition_date IN (SELECT unnest($write_days)) THEN CAST(s.partition_date AS DATE) "
            "ELSE error('row of day ' || coalesce(CAST(s.partition_date AS VARCHAR), 'NULL') "
            "|| ' outside the days of this write') END AS partition_date)"
        )
    params = {**params, "write_clients": clients, "write_days": list(days)}
    scope = {"write_days": list(days), "write_clients": clients}
    probe = f"SELECT * FROM ({select}) AS q LIMIT 0"  # noqa: S608 (our own SQL)
    connection.execute(probe, _used(probe, params))
    scoped, mine = scoped_select(select, [column[0] for column in connection.description], clients)
    stamped = f"SELECT {stamp} FROM ({scoped}) AS s"  # noqa: S608 (checked identifiers and our own SQL)
    in_days = "partition_date IN (SELECT unnest($write_days))"
    existing = (known_columns or {}).get(table)
    if existing is None and _table_exists(connection, table):
        existing = {row[0] for row in connection.execute(f"DESCRIBE {target}").fetchall()}
    connection.begin()
    try:
        if existing is not None:
            columns = _add_new_columns(connection, target, existing, stamped, _used(stamped, params))
            connection.execute(f"DELETE FROM {target} WHERE {in_days} AND {mine}", scope)  # noqa: S608
            # DuckDB answers an INSERT (and a CREATE TABLE AS) with the number of rows written: the
            # rows of the write's clients, whose old rows were just deleted.
            statement = f"INSERT INTO {target} BY NAME {stamped}"
        else:
            statement = f"CREATE TABLE {target} AS {stamped}"
        rows = connection.execute(statement, _used(statement, params)).fetchall()[0][0]
        if existing is None:
            columns = {row[0] for row in connection.execute(f"DESCRIBE {target}").fetchall()}
        connection.execute(
            f"""INSERT OR REPLACE INTO partition_log
            SELECT $table, c.client_id, d.partition_date, count(t.client_id), now()::TIMESTAMP
            FROM (SELECT unnest($write_clients) AS client_id) AS c
            CROSS JOIN (SELECT unnest($write_days) AS partition_date) AS d
            LEFT JOIN (SELECT client_id, partition_date FROM {target} WHERE {in_days}) AS t
              ON t.client_id = c.client_id AND t.partition_date = d.partition_date
            GROUP BY c.client_id, d.partition_date""",  # noqa: S608 (checked identifier)
            {"table": table, **scope},
        )
        # One day's rows are the INSERT's count; several days' are counted by day from the log.
        per_day = (
            {days[0]: int(rows)}
            if len(days) == 1
            else dict(
                connection.execute(
                    f"SELECT partition_date, sum(row_count)::BIGINT FROM partition_log WHERE table_name = $table "  # noqa: S608 (our own SQL)
                    f"AND {in_days} AND {mine} GROUP BY partition_date",
                    {"table": table, **scope},
                ).fetchall()
            )
        )
        if retention is not None:
            oldest = retention.oldest_kept(max(days))
            expire = f"DELETE FROM {target} WHERE partition_date < $oldest"  # noqa: S608 (checked identifier)
            connection.execute(expire, {"oldest": oldest})
            connection.execute(
                "DELETE FROM partition_log WHERE table_name = $table AND partition_date < $oldest",
                {"table": table, "oldest": oldest},
            )
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    if known_columns is not None:
        known_columns[table] = columns
    return per_day
