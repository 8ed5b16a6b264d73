"""The warehouse seam: where tables live and the feature SQL runs.

Every write replaces one day partition of one table inside a transaction, so a re-run never
duplicates rows and a failed write leaves the previous contents of that partition in place.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from karte_assets.duckdb_memory import DEFAULT_MEMORY_LIMIT, duckdb_config
from karte_assets.settings import DEFAULT_SNAPSHOT_RETENTION_DAYS
from karte_assets.sql import bind, duckdb_sql
from karte_assets.training.uris import GS_SCHEME, parquet_files, read_parquet, write_parquet

Rows = pd.DataFrame | pa.Table | pa.RecordBatchReader
# Every partition write is logged in the same transaction, so an empty partition still counts
# as materialised and one can see when each was last written.
_PARTITION_LOG_DDL = """
CREATE TABLE IF NOT EXISTS partition_log (
  table_name VARCHAR, partition_date DATE, row_count BIGINT, written_at TIMESTAMP,
  PRIMARY KEY (table_name, partition_date)
)"""
# Timestamps are stored as UTC; naive timestamps in source files are read as UTC.
_TIMEZONE = "SET TimeZone = 'UTC'"
# Per-day full snapshots: every day holds every user, so old days expire (``snapshot_retention_days``).
SNAPSHOT_TABLES = frozenset({"user_profile", "user_features", "loyalty_training_set", "loyalty_raw_scores"})
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

    snapshot_retention_days: int = Field(
        default=DEFAULT_SNAPSHOT_RETENTION_DAYS,
        ge=1,
        description="Days a per-day snapshot (user_profile, user_features, loyalty_training_set) is kept "
        "(KARTE_SNAPSHOT_RETENTION_DAYS); must cover the training set's snapshot window.",
    )

    def hold_for_run(self, run_id: str, log: logging.Logger) -> None:
        """Wait until no other run writes this warehouse, then keep it for run ``run_id``.

        Each write is atomic, but two runs of the same days would otherwise interleave theirs
        (one's events, the other's features). Where runs execute on other machines, the run
        queue's concurrency limits do this instead, and this does nothing.
        """

    @abstractmethod
    def ensure_table(self, ddl_name: str) -> None:
        """Create a declared table (``sql/<ddl_name>.sql``) if it does not exist yet."""

    @abstractmethod
    def replace_partition(
        self, table: str, day: dt.date, query_name: str, params: Mapping[str, object] | None = None
    ) -> int:
        """Atomically replace ``table``'s partition ``day`` with the rows of a named query."""

    @abstractmethod
    def replace_partition_with_rows(self, table: str, day: dt.date, rows: Rows) -> int:
        """Atomically replace ``table``'s partition ``day`` with rows computed outside SQL."""

    @abstractmethod
    def query(self, query_name: str, params: Mapping[str, object] | None = None) -> pd.DataFrame:
        """The result of a named query, for small results (summaries, one day's scores)."""

    @abstractmethod
    def query_arrow(self, query_name: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """The result of a named query as Arrow, for handing data to another process."""

    @abstractmethod
    def partition_exists(self, table: str, day: dt.date) -> bool:
        """Whether ``table`` has a materialised partition ``day`` (possibly with zero rows)."""

    @abstractmethod
    def export_query(self, query_name: str, params: Mapping[str, object], destination_prefix: str) -> str:
        """Write the rows of a named query as Parquet file(s) under ``destination_prefix`` (a folder
        or ``gs://bucket/folder/``) and return that prefix. The rows go from the warehouse to the
        files directly: at production scale nothing the size of the result passes through here."""

    @abstractmethod
    def replace_partition_from_files(self, table: str, day: dt.date, prefix: str) -> int:
        """Atomically replace ``table``'s partition ``day`` with the rows of the Parquet files under
        ``prefix``; each row has a ``partition_date`` column equal to ``day``."""


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
        config = duckdb_config(self.memory_limit, Path(self.temp_directory or Path(self.path).parent / "tmp"))
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

    def hold_for_run(self, run_id: str, log: logging.Logger) -> None:
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
        bound = {**bind(query_name, {**(params or {}), "partition_date": day}), "partition_date": day}
        with self.connect() as connection:
            return _replace(
                connection, table, select, bound, self._retention(table), self._run_columns_or_none()
            )

    def replace_partition_with_rows(self, table, day, rows):
        with self.connect() as connection:
            connection.register("incoming_rows", rows)
            return _replace(
                connection,
                table,
                "SELECT * FROM incoming_rows",
                {"partition_date": day},
                self._retention(table),
                self._run_columns_or_none(),
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

    def _retention(self, table: str) -> int | None:
        return self.snapshot_retention_days if table in SNAPSHOT_TABLES else None

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

    def replace_partition_from_files(self, table, day, prefix):
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
            return _replace(
                connection,
                table,
                select,
                {**params, "partition_date": day},
                self._retention(table),
                self._run_columns_or_none(),
            )

    def partition_exists(self, table, day):
        with self.connect() as connection:
            found = connection.execute(
                "SELECT 1 FROM partition_log WHERE table_name = $table AND partition_date = $day",
                {"table": table, "day": day},
            ).fetchone()
        return found is not None


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


def _replace(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    select: str,
    params: Mapping[str, object],
    retention_days: int | None,
    known_columns: dict[str, set[str]] | None = None,
) -> int:
    """Replace one day partition; with ``retention_days``, drop the days older than that before it
    (BigQuery's partition expiration counts from today instead: the local graph's days are often
    far from today, so the written day is the clock here). ``known_columns`` (table -> columns)
    spares the catalog look-ups on a connection that has written the table before."""
    target = checked_identifier(table)
    day = {"partition_date": params["partition_date"]}
    stamped = f"SELECT CAST($partition_date AS DATE) AS partition_date, q.* FROM ({select}) AS q"  # noqa: S608 (checked identifiers and our own SQL)
    existing = (known_columns or {}).get(table)
    if existing is None and _table_exists(connection, table):
        existing = {row[0] for row in connection.execute(f"DESCRIBE {target}").fetchall()}
    connection.begin()
    try:
        if existing is not None:
            columns = _add_new_columns(connection, target, existing, stamped, params)
            connection.execute(f"DELETE FROM {target} WHERE partition_date = $partition_date", day)  # noqa: S608
            # DuckDB answers an INSERT (and a CREATE TABLE AS) with the number of rows written.
            rows = connection.execute(f"INSERT INTO {target} BY NAME {stamped}", params).fetchall()[0][0]
        else:
            rows = connection.execute(f"CREATE TABLE {target} AS {stamped}", params).fetchall()[0][0]
            columns = {row[0] for row in connection.execute(f"DESCRIBE {target}").fetchall()}
        connection.execute(
            "INSERT OR REPLACE INTO partition_log VALUES ($table, $day, $rows, now()::TIMESTAMP)",
            {"table": table, "day": day["partition_date"], "rows": rows},
        )
        if retention_days is not None:
            oldest = day["partition_date"] - dt.timedelta(days=retention_days)
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
    return int(rows)
