"""The warehouse on BigQuery: the same SQL files the local path transpiles, run as BigQuery jobs.

A day partition is replaced by one query job that writes the partition decorator ``table$YYYYMMDD``
with WRITE_TRUNCATE: the other clients' rows of that day as they are, and the write's clients' new
rows (rows computed outside SQL are first loaded into a staging table). BigQuery swaps that
partition atomically, so a re-run or a range backfill never duplicates rows, a failed job leaves
the old partition in place, and a client's write keeps every other client's rows. (Two runs that
write one day of one table at the same time would race: the run queue keeps a use case's runs
apart, see DESIGN.md.) Values go in as query
parameters; table names are checked identifiers; every job has labels (query, partition, and the asset and run given by ``labelled``)
and a ``maximum_bytes_billed`` guard, and the bytes it processed go into the asset's metadata.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from dagster import AssetExecutionContext, DagsterInvariantViolationError, InitResourceContext
from dagster_gcp import BigQueryResource
from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.cloud import bigquery
from pydantic import Field, PrivateAttr
from sqlglot import exp
from sqlglot.tokens import TokenType

from karte_assets.resources.bigquery_rows import conform, query_parameters
from karte_assets.resources.gcp_labels import checked_labels, label
from karte_assets.resources.warehouse import (
    ONE_CLIENT,
    SNAPSHOT_TABLES,
    Rows,
    Warehouse,
    checked_identifier,
    consecutive_days,
    write_scope,
)
from karte_assets.settings import BIGQUERY_EVENTS_TABLE
from karte_assets.sql import bigquery_sql, bind
from karte_assets.training.uris import GS_SCHEME

EVENTS_TABLE = "events_table"  # the placeholder in sql/raw_events_from_table.sql
_DAY_MS = 24 * 3600 * 1000
# A staging table expires this long after it is made: one left by a process that died before
# dropping it is gone by then (https://cloud.google.com/bigquery/docs/managing-tables#updating_a_tables_expiration_time).
STAGING_LIFETIME = dt.timedelta(hours=6)
_NAME_PART = re.compile(r"^[A-Za-z0-9_-]+$")
# BigQuery replaces the wildcard by a 12-digit file number: part-000000000000.parquet, ...
EXPORT_FILES = "part-*.parquet"
# A later version of a query may add a column; BigQuery allows that for partition-decorator writes.
_ADD_FIELDS = [bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION]
# A loaded table's legacy type names as Standard SQL types, for the nulls of an added column.
_TYPES = {
    "STRING": "STRING",
    "INTEGER": "INT64",
    "INT64": "INT64",
    "FLOAT": "FLOAT64",
    "FLOAT64": "FLOAT64",
    "BOOLEAN": "BOOL",
    "BOOL": "BOOL",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
}


class BigQueryWarehouse(Warehouse):
    """Tables in one BigQuery dataset, each partitioned by day on ``partition_date``."""

    readable_event_tables: ClassVar[frozenset[str]] = frozenset({BIGQUERY_EVENTS_TABLE})
    bigquery: BigQueryResource = Field(
        description="Project and location (KARTE_BQ_LOCATION) of the jobs; credentials from ADC."
    )
    dataset: str = Field(description="Dataset of the graph's tables (KARTE_BQ_DATASET).")
    events_table: str = Field(
        description="The existing events table, [project.]dataset.table (KARTE_BQ_EVENTS_TABLE)."
    )
    maximum_bytes_billed: int = Field(
        # 1 TiB: above the largest daily job at 300 M users (the training export, ~989 GB; see
        # docs/google-cloud.md), so the guard stops runaway queries, not the graph's own.
        default=2**40,
        gt=0,
        description="A query that would bill more bytes fails instead of running.",
    )
    _usage: dict[tuple[str, str], dict[str, int]] = PrivateAttr(default_factory=dict)
    _log_ready: bool = PrivateAttr(default=False)
    _declared: set[str] = PrivateAttr(default_factory=set)
    _located_runs: set[str] = PrivateAttr(default_factory=set)
    # Inside a run (setup_for_execution to teardown_after_execution), its one client.
    _in_run: bool = PrivateAttr(default=False)
    _run_client: bigquery.Client | None = PrivateAttr(default=None)
    _run_stack: ExitStack = PrivateAttr(default_factory=ExitStack)
    # The labels given by labelled(): the asset and run the jobs belong to.
    _labels: dict[str, str] = PrivateAttr(default_factory=dict)

    def hold_for_run(self, run_id: str, log: logging.Logger, first_day: dt.date | None = None) -> None:
        # Runs on BigQuery are kept apart by the run queue; what a run needs first is the location.
        # (Snapshot partitions expire by BigQuery's clock, from today, whatever the run's days.)
        if run_id not in self._located_runs:
            self._check_location()
            self._located_runs.add(run_id)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._in_run = True

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self._in_run = False
        if self._run_client is not None:
            self._run_client.close()
            self._run_client = None
        self._run_stack.close()

    @contextmanager
    def labelled(self, labels):
        given, self._labels = self._labels, {**self._labels, **checked_labels(labels)}
        try:
            yield
        finally:
            self._labels = given

    @contextmanager
    def _client(self) -> Iterator[bigquery.Client]:
        """In a run, the run's one client: each new client looks up ADC credentials, fetches a
        token and opens its own HTTP session, a fixed cost that every job of every day would pay.
        Outside a run, a client for this call."""
        if self._in_run and self._run_client is None:
            self._run_client = self._run_stack.enter_context(self.bigquery.get_client())
        if self._run_client is not None:
            yield self._run_client
            return
        with self.bigquery.get_client() as client:
            yield client

    def ensure_table(self, ddl_name):
        self._run(ddl_name, bigquery_sql(ddl_name), {})

    def replace_partition(self, table, day, query_name, params=None):
        bound = bind(query_name, {**(params or {}), "partition_date": day})
        # Our own SQL around a checked query file; the day is a parameter.
        stamped = f"SELECT @partition_date AS partition_date, q.*\nFROM (\n{self._sql(query_name)}\n) AS q"  # noqa: S608
        clients = write_scope(bound)
        rows = self._write_clients(table, day, query_name, stamped, {**bound, "partition_date": day}, clients)
        return self._logged(table, day, rows, clients)

    def replace_partition_with_rows(self, table, day, rows: Rows, clients=ONE_CLIENT):
        arrow = rows.read_all() if isinstance(rows, pa.RecordBatchReader) else rows
        arrow = arrow if isinstance(arrow, pa.Table) else pa.Table.from_pandas(arrow, preserve_index=False)
        if "client_id" not in arrow.column_names and len(clients) == 1:
            arrow = arrow.add_column(0, "client_id", pa.array([clients[0]] * arrow.num_rows, pa.string()))
        arrow = arrow.add_column(0, "partition_date", pa.array([day] * arrow.num_rows, pa.date32()))
        staging, config = self._staging_load(table, day)
        with self._client() as client:
            existing = client.get_table(self._table_id(table)).schema
            buffer = io.BytesIO()
            pq.write_table(conform(arrow, existing), buffer)
            size = buffer.tell()
            buffer.seek(0)
            try:
                job = client.load_table_from_file(buffer, staging, size=size, job_config=config)
                self._wait(job, f"rows into {staging}")
                self._expire_soon(staging)
                self._from_staging(table, day, staging, clients)
            finally:
                client.delete_table(staging, not_found_ok=True)
        return self._logged(table, day, arrow.num_rows, clients)

    # A range is written day by day here: a decorator write (``table$YYYYMMDD``, WRITE_TRUNCATE) is
    # BigQuery's one atomic replacement of a partition, and a query job has one destination. Several
    # days at once would need DML (DELETE and INSERT in a multi-statement transaction), whose
    # concurrent-DML limits and pricing the graph's writes avoid. Each day stays old or new.
    def replace_partitions(self, table, days, query_name, params=None):
        written = {}
        for day in consecutive_days(days):
            bound = bind(query_name, {**(params or {}), "first_date": day, "last_date": day})
            clients = write_scope(bound)
            # The query gives each row its partition_date; the decorator refuses a row of another day.
            select = self._sql(query_name)
            rows = self._write_clients(
                table, day, query_name, select, {**bound, "partition_date": day}, clients
            )
            written[day] = self._logged(table, day, rows, clients)
        return written

    def replace_partitions_with_rows(self, table, days, rows: Rows, clients=ONE_CLIENT):
        arrow = rows.read_all() if isinstance(rows, pa.RecordBatchReader) else rows
        arrow = arrow if isinstance(arrow, pa.Table) else pa.Table.from_pandas(arrow, preserve_index=False)
        days = consecutive_days(days)
        dates = arrow.column("partition_date")
        outside = (
            arrow.num_rows - pc.sum(pc.is_in(dates, pa.array(days, pa.date32()))).as_py()
            if arrow.num_rows
            else 0
        )
        if outside:
            raise ValueError(
                f"{outside} rows for {table} are outside the days {days[0]}..{days[-1]} of this write"
            )
        return {
            day: self.replace_partition_with_rows(
                table, day, arrow.filter(pc.equal(dates, day)).drop_columns(["partition_date"]), clients
            )
            for day in days
        }

    def _from_staging(self, table: str, day: dt.date, staging: str, clients) -> int:
        project, dataset, name = staging.split(".")
        select = f"SELECT * FROM `{project}`.`{dataset}`.`{name}`"  # noqa: S608 (our own uuid name)
        with self._client() as client:
            loaded = client.get_table(staging).schema
        if "client_id" not in {f.name for f in loaded}:
            if len(clients) != 1:
                raise ValueError(
                    f"rows without a client_id column cannot be written for clients {list(clients)}"
                )
            # The rows of one client need not name it: they are that client's.
            select = select.replace("SELECT *", "SELECT @write_clients[OFFSET(0)] AS client_id, *", 1)
            loaded = [bigquery.SchemaField("client_id", "STRING"), *loaded]
        return self._write_clients(table, day, "load", select, {"partition_date": day}, clients, loaded)

    def _write_clients(self, table, day, query_name, select, params, clients, incoming=()) -> int:
        """Replace ``clients``' rows of ``table``'s partition ``day`` with ``select``'s rows (each with
        ``partition_date``), keeping the other clients' rows, in one atomic decorator write; a row of
        another client fails the job (BigQuery's ERROR()); returns the rows written for ``clients``."""
        partitioning, clustering = self._declare(table)
        with self._client() as client:
            existing = {
                checked_identifier(f.name): f.field_type
                for f in client.get_table(self._table_id(table)).schema
            }
            given = {checked_identifier(f.name): f.field_type for f in incoming} or existing
            # Either side may lack a column of the other (a load adds fields, ALLOW_FIELD_ADDITION,
            # or leaves some out): null there.
            both = {**existing, **given}

            def columns(present: dict[str, str]) -> str:
                return ", ".join(
                    f"`{name}`" if name in present else f"CAST(NULL AS {_TYPES[kind]}) AS `{name}`"
                    for name, kind in both.items()
                )

            kept = (
                f"SELECT {columns(existing)} FROM `{self.dataset}`.`{table}`\n"  # noqa: S608 (checked identifiers, our own SQL)
                "WHERE partition_date = @partition_date AND client_id NOT IN UNNEST(@write_clients)"
            )
            check = (
                "IF(client_id IN UNNEST(@write_clients), client_id, ERROR(CONCAT('row of client ', "
                "IFNULL(client_id, 'NULL'), ' outside the clients of this write')))"
            )
            new = (
                f"SELECT {columns(given)} FROM (SELECT * REPLACE ({check} AS client_id) FROM (\n{select}\n))"  # noqa: S608 (checked identifiers, our own SQL)
            )
            config = self._job_config(
                bigquery.QueryJobConfig,
                query_name,
                {**params, "write_clients": list(clients)},
                day,
                destination=self._partition(table, day),
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                time_partitioning=partitioning,
                clustering_fields=clustering,
                schema_update_options=_ADD_FIELDS,
            )
            job = client.query(f"{kept}\nUNION ALL\n{new}", job_config=config)  # noqa: S608 (checked names)
            self._wait(job, f"{query_name} into {table}${day:%Y%m%d} for {len(clients)} clients")
        # The count of a result is known without reading it (the rows stay in BigQuery).
        written = self._run(
            "partition_client_rows",
            f"SELECT 1 AS written FROM `{self.dataset}`.`{table}` "  # noqa: S608 (checked identifier)
            "WHERE partition_date = @partition_date AND client_id IN UNNEST(@write_clients)",
            {"partition_date": day, "write_clients": list(clients)},
        )
        return int(written.total_rows)

    def query(self, query_name, params=None):
        return self.query_arrow(query_name, params).to_pandas(date_as_object=False)

    def query_arrow(self, query_name, params=None):
        bound = bind(query_name, params or {})
        rows = self._run(query_name, self._sql(query_name), bound)
        return rows.to_arrow(create_bqstorage_client=False)

    def logged_clients(self, table, day, client_ids):
        self._ensure_log()
        return super().logged_clients(table, day, client_ids)

    def export_query(self, query_name, params, destination_prefix):
        if not destination_prefix.startswith(GS_SCHEME) or not destination_prefix.endswith("/"):
            raise ValueError(f"BigQuery exports to a gs://bucket/folder/ prefix, not {destination_prefix!r}")
        bound = bind(query_name, dict(params))
        day = bound.get("partition_date")
        # A query job cannot write files: it fills a table that an extract job then writes to
        # Cloud Storage. The table is the export's alone and dropped once the files are written.
        staging = self._table_id(f"export_{query_name}_{uuid.uuid4().hex}")
        query = self._job_config(
            bigquery.QueryJobConfig,
            query_name,
            bound,
            day,
            destination=staging,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        # A wildcard, so BigQuery may split the rows into files of at most 1 GB each, as it must
        # above 1 GB (https://cloud.google.com/bigquery/docs/exporting-data#exporting_data_into_one_or_more_files).
        files = f"{destination_prefix}{EXPORT_FILES}"
        extract = self._job_config(
            bigquery.ExtractJobConfig,
            query_name,
            {},
            day,
            destination_format=bigquery.DestinationFormat.PARQUET,
        )
        with self._client() as client:
            try:
                self._wait(
                    client.query(self._sql(query_name), job_config=query), f"{query_name} into {staging}"
                )
                self._expire_soon(staging)
                self._wait(
                    client.extract_table(staging, [files], job_config=extract), f"{staging} to {files}"
                )
            finally:
                client.delete_table(staging, not_found_ok=True)
        return destination_prefix

    def _staging_load(self, table, day):
        """A fresh staging table for ``table``'s rows of ``day`` and the Parquet load job's config."""
        self._declare(table)
        staging = self._table_id(f"load_{table}_{uuid.uuid4().hex}")
        return staging, self._job_config(
            bigquery.LoadJobConfig,
            "load",
            {},
            day,
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )

    def replace_partition_from_files(self, table, day, prefix, clients=ONE_CLIENT):
        if not prefix.startswith(GS_SCHEME) or not prefix.endswith("/"):
            raise ValueError(f"BigQuery loads from a gs://bucket/folder/ prefix, not {prefix!r}")
        staging, config = self._staging_load(table, day)
        # One wildcard after the bucket name selects every file the job wrote
        # (https://cloud.google.com/bigquery/docs/batch-loading-data#load-wildcards).
        with self._client() as client:
            try:
                job = client.load_table_from_uri(f"{prefix}*.parquet", staging, job_config=config)
                self._wait(job, f"{prefix} into {staging}")
                self._expire_soon(staging)
                rows = self._from_staging(table, day, staging, clients)
            finally:
                client.delete_table(staging, not_found_ok=True)
        return self._logged(table, day, rows, clients)

    def _logged(self, table: str, day: dt.date, rows: int, clients=ONE_CLIENT) -> int:
        # Logged after the partition is written, not in one transaction with it (BigQuery has no
        # transaction around a load or a decorator write): a crash in between leaves the day
        # written but unlogged, so it is reported missing and rewritten by the next run, which is
        # safe. A logged day is always there.
        self._ensure_log()
        params = {"table_name": table, "partition_date": day, "row_count": rows, "client_ids": list(clients)}
        self._run("partition_log_insert", bigquery_sql("partition_log_insert"), params)
        return int(rows)

    def _ensure_log(self) -> None:
        if not self._log_ready:
            self.ensure_table("partition_log_table")
            self._log_ready = True

    def _declare(self, table: str) -> tuple[bigquery.TimePartitioning, list[str] | None]:
        """Create ``table`` from its declared DDL (``sql/<table>_table.sql``) before its first write,
        with the partition expiration of a per-day snapshot; its partitioning and clustering.

        A job that writes a destination must state the table's own partitioning and clustering,
        or BigQuery fails it ("Incompatible table partitioning specification").
        """
        field, clustering = declared_layout(table)
        if table not in self._declared:
            self.ensure_table(f"{table}_table")
            if table in SNAPSHOT_TABLES:
                self._expire_partitions(table)
            self._declared.add(table)
        return bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field=field), clustering

    def _expire_partitions(self, table: str) -> None:
        """A per-day snapshot keeps ``snapshot_retention_days`` days: set through the table API
        (``timePartitioning.expirationMs``), a number, never text pasted into DDL."""
        expiration_ms = self.snapshot_retention_days * _DAY_MS
        with self._client() as client:
            existing = client.get_table(self._table_id(table))
            if existing.time_partitioning.expiration_ms != expiration_ms:
                existing.time_partitioning = bigquery.TimePartitioning(
                    type_=existing.time_partitioning.type_,
                    field=existing.time_partitioning.field,
                    expiration_ms=expiration_ms,
                )
                client.update_table(existing, ["time_partitioning"])

    def _expire_soon(self, staging: str) -> None:
        """Give a staging table, just made by a job, an expiration ``STAGING_LIFETIME`` ahead."""
        with self._client() as client:
            table = client.get_table(staging)
            table.expires = dt.datetime.now(dt.UTC) + STAGING_LIFETIME
            client.update_table(table, ["expires"])

    def _check_location(self) -> None:
        """Jobs run in one location; the graph's dataset and the events table must both be there."""
        location = self.bigquery.location
        if not location:
            raise ValueError("BigQueryWarehouse needs a location for its jobs (KARTE_BQ_LOCATION)")
        with self._client() as client:
            try:
                dataset = client.get_dataset(f"{self.bigquery.project}.{self.dataset}")
                events = client.get_table(self.events_table)
            except NotFound as error:
                raise RuntimeError(
                    f"BigQuery: {error.message} (KARTE_BQ_DATASET, KARTE_BQ_EVENTS_TABLE)"
                ) from error
        if {dataset.location.lower(), events.location.lower()} != {location.lower()}:
            raise RuntimeError(
                f"BigQuery location mismatch: jobs run in {location} (KARTE_BQ_LOCATION), the dataset "
                f"{self.bigquery.project}.{self.dataset} is in {dataset.location} and the events table "
                f"{self.events_table} is in {events.location}; a job reads and writes one location only"
            )

    def _sql(self, query_name: str) -> str:
        """The file's text as it was analyzed, with only the events placeholder replaced by the
        configured table: each of its parts a quoted identifier (a project id may contain dashes)."""
        text = bigquery_sql(query_name)
        placeholders = [
            token
            for token in sqlglot.tokenize(text, read="bigquery")
            if token.token_type == TokenType.VAR and token.text == EVENTS_TABLE
        ]
        if not placeholders:
            return text
        parts = self.events_table.split(".")
        if not all(_NAME_PART.match(part) for part in parts):
            raise ValueError(f"events_table {self.events_table!r} is not [project.]dataset.table")
        events = ".".join(f"`{part}`" for part in parts)
        for token in reversed(placeholders):
            text = text[: token.start] + events + text[token.end + 1 :]
        return text

    def _table_id(self, table: str) -> str:
        return f"{self.bigquery.project}.{self.dataset}.{checked_identifier(table)}"

    def _partition(self, table: str, day: dt.date) -> str:
        return f"{self._table_id(table)}${day:%Y%m%d}"

    def _run(self, query_name: str, sql: str, params: Mapping[str, object]):
        config = self._job_config(bigquery.QueryJobConfig, query_name, params, params.get("partition_date"))
        with self._client() as client:
            return self._wait(client.query(sql, job_config=config), query_name)

    def _job_config(self, kind, query_name: str, params: Mapping[str, object], day, **options: object):
        labels = {**self._labels, "karte_query": label(query_name)}
        if day is not None:
            labels["dagster_partition"] = label(day.isoformat())
        config = kind(labels=labels, **options)
        if kind is bigquery.QueryJobConfig:
            config.default_dataset = f"{self.bigquery.project}.{self.dataset}"
            config.query_parameters = query_parameters(params)
            config.maximum_bytes_billed = self.maximum_bytes_billed
        return config

    def _wait(self, job, what: str):
        try:
            rows = job.result()
        except GoogleAPICallError as error:
            raise RuntimeError(f"BigQuery job {job.job_id} ({what}) failed: {error.message}") from error
        self._count(job)
        return rows

    def _count(self, job) -> None:
        context = _current_asset_context()
        if context is None:
            return
        usage = self._usage.setdefault(
            (context.run.run_id, context.asset_key.to_user_string()), {"jobs": 0, "processed": 0, "billed": 0}
        )
        usage["jobs"] += 1
        usage["processed"] += getattr(job, "total_bytes_processed", None) or 0
        usage["billed"] += getattr(job, "total_bytes_billed", None) or 0
        context.add_asset_metadata(
            {
                "bigquery_jobs": usage["jobs"],
                "bigquery_bytes_processed": usage["processed"],
                "bigquery_bytes_billed": usage["billed"],
            }
        )


@functools.cache
def declared_layout(table: str) -> tuple[str, list[str] | None]:
    """The partition column and the clustering columns (None if none) of a table's declared DDL."""
    statement = sqlglot.parse_one(bigquery_sql(f"{table}_table"), read="bigquery")
    partition = statement.find(exp.PartitionedByProperty)
    if partition is None:
        raise ValueError(f"sql/{table}_table.sql declares no PARTITION BY: every table is partitioned by day")
    cluster = statement.find(exp.ClusterProperty)
    return partition.this.name, [column.name for column in cluster.expressions] if cluster else None


def _current_asset_context() -> AssetExecutionContext | None:
    """The asset being materialised, if any: the warehouse is also used outside assets."""
    try:
        return AssetExecutionContext.get()
    except DagsterInvariantViolationError:
        return None
