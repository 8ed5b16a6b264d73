"""A loopback stand-in for the BigQuery REST API, executing jobs on DuckDB.

It serves the calls google-cloud-bigquery makes for query jobs (jobs.insert, jobs.get,
jobs.getQueryResults), Parquet load jobs (multipart upload) and tables.get. Each query must parse
as BigQuery SQL; it runs transpiled by the same code as the local path (``karte_assets.sql``).
Writes follow BigQuery's rules for destinations: a ``table$YYYYMMDD`` decorator needs a
day-partitioned table and rows of that day only; WRITE_TRUNCATE replaces just that partition.
Bytes processed are estimated (8 bytes a cell of every table a query reads) and checked against
``maximumBytesBilled`` as BigQuery does.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import io
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from dagster_gcp import BigQueryResource
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from sqlglot import exp

from karte_assets.sql import to_duckdb
from karte_assets_tests.fakes.gcs import FakeGcs
from karte_assets_tests.fakes.http import FakeHttpService, Request, Response

_PROJECT = r"/bigquery/v2/projects/([^/]+)"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_BILLED = 10 * 2**20  # BigQuery bills at least 10 MB per query
# https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobConfigurationExtract destinationFormat
_EXTRACT_FORMATS = {"CSV", "NEWLINE_DELIMITED_JSON", "AVRO", "PARQUET"}


class JobError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FakeBigQuery(FakeHttpService):
    """Datasets are DuckDB schemas; ``jobs`` keeps each job's resource as BigQuery would return it."""

    # Extract jobs: BigQuery writes at most 1 GB per file; tests lower these to see the rules.
    max_single_file_bytes = 2**30
    extract_rows_per_file = 1_000_000

    def __init__(self, gcs: FakeGcs | None = None) -> None:
        super().__init__()
        self.gcs = gcs  # where extract jobs write and load jobs read gs:// URIs
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.partitioning: dict[tuple[str, str], str] = {}  # (dataset, table) -> partition column
        self.jobs: dict[str, dict] = {}
        self.results: dict[str, pa.Table] = {}
        self._lock = threading.Lock()
        self.route("POST", _PROJECT + r"/jobs", self._insert)
        self.route("POST", r"/upload" + _PROJECT + r"/jobs", self._upload)
        self.route("GET", _PROJECT + r"/jobs/([^/]+)", self._get_job)
        self.route("GET", _PROJECT + r"/queries/([^/]+)", self._get_results)
        self.route("GET", _PROJECT + r"/datasets/([^/]+)/tables/([^/]+)", self._get_table)
        self.route("DELETE", _PROJECT + r"/datasets/([^/]+)/tables/([^/]+)", self._delete_table)

    def table(self, dataset: str, table: str) -> pa.Table:
        return self.db.execute(f'SELECT * FROM "{dataset}"."{table}"').to_arrow_table()  # noqa: S608 (test data)

    def create(self, dataset: str, table: str, rows: pa.Table, partitioned_by: str | None = None) -> None:
        """Seed a table, as one that existed before the graph ran."""
        with self._lock:
            self._ensure_dataset(dataset)
            self.db.register("seed", rows)
            self.db.execute(f'CREATE TABLE "{dataset}"."{table}" AS SELECT * FROM seed')  # noqa: S608
            self.db.unregister("seed")
            if partitioned_by:
                self.partitioning[(dataset, table)] = partitioned_by

    # --- routes

    def _insert(self, request: Request) -> Response:
        return Response.json(self._run_job(request.groups[0], request.json(), None))

    def _upload(self, request: Request) -> Response:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.body
        )
        resource_part, data_part = list(message.iter_parts())
        resource = json.loads(resource_part.get_payload(decode=True))
        return Response.json(self._run_job(request.groups[0], resource, data_part.get_payload(decode=True)))

    def _get_job(self, request: Request) -> Response:
        job = self.jobs.get(request.groups[1])
        return (
            Response.json(job)
            if job
            else Response.error(404, f"Not found: Job {request.groups[1]}", "notFound")
        )

    def _get_results(self, request: Request) -> Response:
        job_id = request.groups[1]
        job = self.jobs.get(job_id)
        if job is None:
            return Response.error(404, f"Not found: Job {job_id}", "notFound")
        if "errorResult" in job["status"]:
            error = job["status"]["errorResult"]
            return Response.error(400, error["message"], error["reason"])
        rows = self.results.get(job_id, pa.table({}))
        start = int(request.query.get("pageToken") or request.query.get("startIndex") or 0)
        count = int(request.query.get("maxResults", rows.num_rows))
        page = rows.slice(start, count)
        payload = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job["jobReference"],
            "jobComplete": True,
            "totalRows": str(rows.num_rows),
            "schema": {"fields": [_field(f) for f in rows.schema]},
            "rows": _rows(
                page, int_timestamps=request.query.get("formatOptions.useInt64Timestamp") == "true"
            ),
        }
        if start + page.num_rows < rows.num_rows:
            payload["pageToken"] = str(start + page.num_rows)
        return Response.json(payload)

    def _get_table(self, request: Request) -> Response:
        project, dataset, table = request.groups
        if not self._exists(dataset, table):
            return Response.error(404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        resource = {
            "kind": "bigquery#table",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": [_field(f) for f in self.table(dataset, table).schema]},
        }
        if (dataset, table) in self.partitioning:
            resource["timePartitioning"] = {"type": "DAY", "field": self.partitioning[(dataset, table)]}
        return Response.json(resource)

    # --- jobs

    def _run_job(self, project: str, resource: dict, data: bytes | None) -> dict:
        reference = {
            "projectId": project,
            "jobId": uuid.uuid4().hex,
            "location": "US",
            **resource.get("jobReference", {}),
        }
        configuration = resource["configuration"]
        status: dict = {"state": "DONE"}
        statistics: dict = {"creationTime": "1", "startTime": "1", "endTime": "2"}
        try:
            with self._lock:
                if "query" in configuration:
                    statistics["query"] = self._query(reference["jobId"], configuration["query"])
                    statistics["totalBytesProcessed"] = statistics["query"]["totalBytesProcessed"]
                elif "extract" in configuration:
                    statistics["extract"] = self._extract(configuration["extract"])
                elif data is None:
                    statistics["load"] = self._load_from_uris(configuration["load"])
                else:
                    self._load(configuration["load"], data)
        except (JobError, duckdb.Error, sqlglot.errors.ParseError) as error:
            reason = getattr(error, "reason", "invalidQuery")
            status.update(
                errorResult={"reason": reason, "message": str(error)},
                errors=[{"reason": reason, "message": str(error)}],
            )
        job = {
            "kind": "bigquery#job",
            "id": f"{project}:US.{reference['jobId']}",
            "jobReference": reference,
            "configuration": configuration,
            "status": status,
            "statistics": statistics,
        }
        self.jobs[reference["jobId"]] = job
        return job

    def _query(self, job_id: str, config: dict) -> dict:
        statement = sqlglot.parse_one(config["query"], read="bigquery")
        default = config.get("defaultDataset", {}).get("datasetId")
        if default:
            self._ensure_dataset(default)
            self.db.execute(f"SET schema = '{default}'")
        ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
        read = {
            (table.db or default, table.name)
            for table in statement.find_all(exp.Table)
            if table.name not in ctes
        }
        for table in statement.find_all(exp.Table):
            table.set("catalog", None)  # datasets are schemas; projects are not modelled
        processed = sum(self._cells(dataset, table) * 8 for dataset, table in read)
        billed = max(_MIN_BILLED, processed) if isinstance(statement, exp.Query) else 0
        limit = config.get("maximumBytesBilled")
        if limit is not None and billed > int(limit):
            raise JobError(
                "bytesBilledLimitExceeded",
                f"Query exceeded limit for bytes billed: {limit}. {billed} or higher required.",
            )
        params = {p["name"]: _parameter(p) for p in config.get("queryParameters", [])}
        sql = to_duckdb(statement.sql(dialect="bigquery"))
        if isinstance(statement, exp.Create):
            self._create(statement, sql, default)
        else:
            result = self.db.execute(sql, params)
            if isinstance(statement, exp.Query):
                rows = result.to_arrow_table()
                destination = config.get("destinationTable")
                if destination:
                    self._write(destination, rows, config)
                self.results[job_id] = rows
        return {"totalBytesProcessed": str(processed), "totalBytesBilled": str(billed), "cacheHit": False}

    def _create(self, statement: exp.Create, sql: str, default: str | None) -> None:
        table = statement.find(exp.Table)
        dataset = table.db or default
        partition = statement.find(exp.PartitionedByProperty)
        self.db.execute(sql)
        if partition is not None:
            self.partitioning[(dataset, table.name)] = partition.this.name

    def _load(self, config: dict, data: bytes | None) -> None:
        if config.get("sourceFormat") != "PARQUET" or data is None:
            raise JobError(
                "invalid", f"the fake loads Parquet uploads only, not {config.get('sourceFormat')}"
            )
        self._write(config["destinationTable"], pq.read_table(io.BytesIO(data)), config)

    def _delete_table(self, request: Request) -> Response:
        # https://cloud.google.com/bigquery/docs/reference/rest/v2/tables/delete
        project, dataset, table = request.groups
        if not self._exists(dataset, table):
            return Response.error(404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        with self._lock:
            self.db.execute(f'DROP TABLE "{dataset}"."{table}"')
            self.partitioning.pop((dataset, table), None)
        return Response(204)

    def _extract(self, config: dict) -> dict:
        """An extract job: a table to Parquet files in the GCS fake.

        https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobConfigurationExtract and the
        rules of https://cloud.google.com/bigquery/docs/exporting-data: one wildcard per URI at
        most, replaced by a 12-digit file number; a table over 1 GB needs a wildcard URI.
        """
        fmt = config.get("destinationFormat", "CSV")
        if fmt not in _EXTRACT_FORMATS:
            raise JobError("invalid", f"Invalid extract destination format {fmt!r}")
        if fmt != "PARQUET":
            raise JobError("invalid", f"the fake extracts PARQUET only, not {fmt}")
        if config.get("compression", "NONE") not in ("NONE", "SNAPPY", "GZIP", "ZSTD"):
            raise JobError("invalid", f"Invalid compression {config['compression']!r} for PARQUET")
        source = config["sourceTable"]
        dataset, table = source["datasetId"], source["tableId"]
        if not self._exists(dataset, table):
            raise JobError("notFound", f"Not found: Table {source['projectId']}:{dataset}.{table}")
        rows = self.table(dataset, table)
        (uri,) = config["destinationUris"]  # the fake writes one URI's files
        if not uri.startswith("gs://") or uri.count("*") > 1:
            raise JobError("invalid", f"Invalid destination URI {uri!r}: gs:// with at most one '*'")
        size = self._cells(dataset, table) * 8
        if "*" not in uri and size > self.max_single_file_bytes:
            raise JobError(
                "invalid",
                f"Table {dataset}.{table} too large to be exported to a single file. Specify a uri "
                f"including a * to shard export. See 'Exporting data into one or more files' in "
                f"https://cloud.google.com/bigquery/docs/exporting-data.",
            )
        bucket, _, pattern = uri.removeprefix("gs://").partition("/")
        per_file = max(1, self.extract_rows_per_file) if "*" in uri else max(1, rows.num_rows)
        for number, start in enumerate(range(0, max(rows.num_rows, 1), per_file)):
            buffer = io.BytesIO()
            pq.write_table(rows.slice(start, per_file), buffer)
            stored = self._storage()._store(
                bucket, pattern.replace("*", f"{number:012d}"), buffer.getvalue(), None
            )
            if stored.status != 200:
                raise JobError("notFound", f"Not found: URI {uri}")
        return {"destinationUriFileCounts": [str(number + 1)]}

    def _load_from_uris(self, config: dict) -> dict:
        """A load job from Cloud Storage: each source URI may hold one '*' after the bucket name
        (https://cloud.google.com/bigquery/docs/batch-loading-data#load-wildcards); a URI that
        matches no object fails the job."""
        if config.get("sourceFormat") != "PARQUET":
            raise JobError("invalid", f"the fake loads Parquet only, not {config.get('sourceFormat')}")
        tables = []
        for uri in config["sourceUris"]:
            bucket, _, pattern = uri.removeprefix("gs://").partition("/")
            if not uri.startswith("gs://") or uri.count("*") > 1:
                raise JobError("invalid", f"Invalid source URI {uri!r}: gs:// with at most one '*'")
            head, star, tail = pattern.partition("*")
            if star:
                found = self._storage().names(bucket, head)
                names = [n for n in found if n.endswith(tail) and len(n) >= len(head) + len(tail)]
            else:
                names = [pattern] if (bucket, pattern) in self._storage().objects else []
            if not names:
                raise JobError("notFound", f"Not found: URI {uri}")
            tables += [pq.read_table(io.BytesIO(self._storage().objects[(bucket, n)][1])) for n in names]
        rows = pa.concat_tables(tables, promote_options="default")
        self._write(config["destinationTable"], rows, config)
        return {"inputFiles": str(len(tables)), "outputRows": str(rows.num_rows)}

    def _storage(self) -> FakeGcs:
        if self.gcs is None:
            raise JobError("invalid", "this FakeBigQuery has no FakeGcs for gs:// URIs")
        return self.gcs

    def _write(self, destination: dict, rows: pa.Table, config: dict) -> None:
        dataset = destination["datasetId"]
        table, _, decorator = destination["tableId"].partition("$")
        name = f'"{dataset}"."{table}"'
        self._ensure_dataset(dataset)
        self.db.register("incoming", rows)
        try:
            if not self._exists(dataset, table):
                if config.get("createDisposition", "CREATE_IF_NEEDED") != "CREATE_IF_NEEDED":
                    raise JobError("notFound", f"Not found: Table {dataset}.{table}")
                self.db.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming LIMIT 0")  # noqa: S608
                field = config.get("timePartitioning", {}).get("field")
                if field:
                    self.partitioning[(dataset, table)] = field
            self._add_columns(dataset, table, rows, config)
            where = "TRUE"
            if decorator:
                field = self.partitioning.get((dataset, table))
                if field is None:
                    raise JobError(
                        "invalid",
                        f"{dataset}.{table} is not partitioned: no partition decorator ${decorator}",
                    )
                day = dt.datetime.strptime(decorator, "%Y%m%d").date()
                outside = self.db.execute(
                    f'SELECT count(*) FROM incoming WHERE "{field}" IS DISTINCT FROM $day', {"day": day}
                ).fetchall()[0][0]  # noqa: S608 (fetchall: a pending result blocks unregister)
                if outside:
                    raise JobError(
                        "invalid", f"{outside} rows do not belong to the partition {table}${decorator}"
                    )
                where = f"\"{field}\" = DATE '{day}'"
            disposition = config.get("writeDisposition", "WRITE_EMPTY")
            if disposition == "WRITE_TRUNCATE":
                self.db.execute(f"DELETE FROM {name} WHERE {where}")  # noqa: S608
            elif (
                disposition == "WRITE_EMPTY"
                and self.db.execute(f"SELECT count(*) FROM {name} WHERE {where}").fetchone()[0]
            ):  # noqa: S608
                raise JobError("duplicate", f"Table {dataset}.{table} is not empty")
            self.db.execute(f"INSERT INTO {name} BY NAME SELECT * FROM incoming")  # noqa: S608
        finally:
            self.db.unregister("incoming")

    def _add_columns(self, dataset: str, table: str, rows: pa.Table, config: dict) -> None:
        existing = set(self.table(dataset, table).column_names)
        new = [field for field in rows.schema if field.name not in existing]
        if new and "ALLOW_FIELD_ADDITION" not in config.get("schemaUpdateOptions", []):
            raise JobError(
                "invalid",
                f"Provided Schema does not match Table {dataset}.{table}: new fields {[f.name for f in new]}",
            )
        for field in new:
            self.db.execute(
                f'ALTER TABLE "{dataset}"."{table}" ADD COLUMN "{field.name}" {_duck_type(field.type)}'
            )

    def _cells(self, dataset: str, table: str) -> int:
        if not self._exists(dataset, table):
            return 0
        rows = self.db.execute(f'SELECT count(*) FROM "{dataset}"."{table}"').fetchone()[0]  # noqa: S608
        return rows * len(self.table(dataset, table).column_names)

    def _exists(self, dataset: str, table: str) -> bool:
        found = self.db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $s AND table_name = $t",
            {"s": dataset, "t": table},
        ).fetchone()[0]
        return bool(found)

    def _ensure_dataset(self, dataset: str) -> None:
        self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset}"')


def _parameter(parameter: dict) -> object:
    kind = parameter["parameterType"]["type"]
    if kind == "ARRAY":
        element = {"parameterType": parameter["parameterType"]["arrayType"]}
        values = parameter["parameterValue"].get("arrayValues", [])
        return [_parameter({**element, "parameterValue": value}) for value in values]
    value = parameter["parameterValue"].get("value")
    if value is None:
        return None
    converters = {
        "INT64": int,
        "FLOAT64": float,
        "BOOL": lambda v: v == "true",
        "STRING": str,
        "DATE": dt.date.fromisoformat,
        "TIMESTAMP": lambda v: dt.datetime.fromisoformat(v.replace(" ", "T")),
    }
    return converters[kind](value)


def _bq_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_floating(arrow_type):
        return "FLOAT64"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type):
        return "STRING"
    raise TypeError(f"the fake has no BigQuery type for {arrow_type}")


def _duck_type(arrow_type: pa.DataType) -> str:
    return {
        "BOOL": "BOOLEAN",
        "INT64": "BIGINT",
        "FLOAT64": "DOUBLE",
        "DATE": "DATE",
        "TIMESTAMP": "TIMESTAMPTZ",
        "STRING": "VARCHAR",
    }[_bq_type(arrow_type)]


def _field(field: pa.Field) -> dict:
    return {"name": field.name, "type": _bq_type(field.type), "mode": "NULLABLE"}


def _rows(table: pa.Table, int_timestamps: bool) -> list[dict]:
    def cell(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dt.datetime):
            value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            micros = (value - _EPOCH) // dt.timedelta(microseconds=1)
            return str(micros) if int_timestamps else repr(micros / 1_000_000)
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value) if not isinstance(value, float) else repr(value)

    return [{"f": [{"v": cell(value)} for value in row.values()]} for row in table.to_pylist()]


class LoopbackBigQuery(BigQueryResource):
    """dagster-gcp's BigQuery resource with its client pointed at a fake, without credentials."""

    url: str

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        yield bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )
