"""A loopback stand-in for the BigQuery REST API, executing jobs on DuckDB.

It serves the calls google-cloud-bigquery makes for query jobs (jobs.insert, jobs.get,
jobs.getQueryResults), Parquet load jobs (multipart and resumable uploads), datasets.get,
tables.get and tables.patch. It enforces, before anything runs, the rules of BigQuery that the
graph depends on, each with its reference beside it:

- every query, DDL and DML statement is analyzed by Google's GoogleSQL analyzer (ZetaSQL) against
  the fake's current tables and the job's parameter types; what it rejects fails as ``invalidQuery``;
- datasets exist and have a location; a job in another location than a dataset it touches fails;
- a destination's partitioning and clustering must match the existing table's;
- a ``table$YYYYMMDD`` decorator needs a day-partitioned table and rows of that day only;
  WRITE_TRUNCATE replaces just that partition;
- bytes processed count only the partitions a constant filter selects (partition pruning), and are
  checked against ``maximumBytesBilled``.

Only a statement that passed all of this is transpiled to DuckDB and run.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import io
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
from karte_assets_tests.googlesql import Analyzer, GoogleSQLError

_PROJECT = r"/bigquery/v2/projects/([^/]+)"
_UPLOAD = r"/upload" + _PROJECT + r"/jobs"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_BILLED = 10 * 2**20  # BigQuery bills at least 10 MB per query
# "The chunk size must be a multiple of 256 KiB" for every chunk but the last:
# https://cloud.google.com/bigquery/docs/reference/api-uploads#resumable
_CHUNK_QUANTUM = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")
# https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobConfigurationExtract destinationFormat
_EXTRACT_FORMATS = {"CSV", "NEWLINE_DELIMITED_JSON", "AVRO", "PARQUET"}


class JobError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# https://cloud.google.com/bigquery/docs/labels-intro#requirements: at most 64 labels; keys and
# values at most 63 characters of lowercase letters, digits, _ and - (international characters are
# allowed too; the graph never sends them); keys start with a lowercase letter, values may be empty.
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def _check_labels(labels: dict) -> None:
    """Labels BigQuery refuses (it answers jobs.insert with 400 ``invalid``; here the job fails so)."""
    if len(labels) > 64:
        raise JobError("invalid", f"Too many labels ({len(labels)}): at most 64")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise JobError("invalid", f"Invalid label {key}: {value!r}")


@dataclass
class TableSpec:
    """What BigQuery keeps of a table besides its rows."""

    partition_field: str | None = None
    clustering: list[str] = field(default_factory=list)
    expiration_ms: int | None = None
    expiration_time: str | None = None  # the table's own expiry, ms since the epoch

    def described(self) -> str:
        """The form of BigQuery's "Incompatible table partitioning specification" message."""
        text = f"interval(type:day,field:{self.partition_field})" if self.partition_field else "none"
        return text + (f" clustering({','.join(self.clustering)})" if self.clustering else "")


@dataclass
class _Upload:
    project: str
    resource: dict
    data: bytearray = field(default_factory=bytearray)


class FakeBigQuery(FakeHttpService):
    """Datasets are DuckDB schemas; ``jobs`` keeps each job's resource as BigQuery would return it,
    and ``analyzed`` the statement text of each query job that GoogleSQL's ``analyzer`` accepted.

    ``location`` is where datasets are that the test did not place elsewhere (``create_dataset``).
    """

    # Extract jobs: BigQuery writes at most 1 GB per file; tests lower these to see the rules.
    max_single_file_bytes = 2**30
    extract_rows_per_file = 1_000_000

    def __init__(self, analyzer: Analyzer, location: str = "US", gcs: FakeGcs | None = None) -> None:
        super().__init__()
        self.analyzer = analyzer
        self.analyzed: dict[str, str] = {}  # job id -> the statement GoogleSQL accepted
        self.gcs = gcs  # where extract jobs write and load jobs read gs:// URIs
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.location = location
        self.datasets: dict[str, str] = {}  # dataset -> location
        self.specs: dict[tuple[str, str], TableSpec] = {}
        self.jobs: dict[str, dict] = {}
        self.results: dict[str, pa.Table] = {}
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        self.route("POST", _PROJECT + r"/jobs", self._insert)
        self.route("POST", _UPLOAD, self._upload)
        self.route("PUT", _UPLOAD, self._upload_chunk)
        self.route("GET", _PROJECT + r"/jobs/([^/]+)", self._get_job)
        self.route("GET", _PROJECT + r"/queries/([^/]+)", self._get_results)
        self.route("GET", _PROJECT + r"/datasets/([^/]+)", self._get_dataset)
        self.route("GET", _PROJECT + r"/datasets/([^/]+)/tables/([^/]+)", self._get_table)
        self.route("PATCH", _PROJECT + r"/datasets/([^/]+)/tables/([^/]+)", self._patch_table)
        self.route("DELETE", _PROJECT + r"/datasets/([^/]+)/tables/([^/]+)", self._delete_table)

    def table(self, dataset: str, table: str) -> pa.Table:
        return self.db.execute(f'SELECT * FROM "{dataset}"."{table}"').to_arrow_table()  # noqa: S608 (test data)

    def create_dataset(self, dataset: str, location: str | None = None) -> None:
        """A dataset in ``location`` (the fake's default if None), as one made in the console."""
        with self._lock:
            self.datasets[dataset] = location or self.location
            self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset}"')

    def create(
        self,
        dataset: str,
        table: str,
        rows: pa.Table,
        partitioned_by: str | None = None,
        clustered_by: tuple[str, ...] = (),
    ) -> None:
        """Seed a table, as one that existed before the graph ran (its dataset too, if new)."""
        if dataset not in self.datasets:
            self.create_dataset(dataset)
        with self._lock:
            self.db.register("seed", rows)
            self.db.execute(f'CREATE TABLE "{dataset}"."{table}" AS SELECT * FROM seed')  # noqa: S608
            self.db.unregister("seed")
            self.specs[(dataset, table)] = TableSpec(partitioned_by, list(clustered_by))

    # --- routes

    def _insert(self, request: Request) -> Response:
        return Response.json(self._run_job(request.groups[0], request.json(), None))

    def _upload(self, request: Request) -> Response:
        if request.query.get("uploadType") == "resumable":
            # https://cloud.google.com/bigquery/docs/reference/api-uploads#resumable: the first
            # request carries the job resource and answers with the session URI in Location.
            upload_id = uuid.uuid4().hex
            self._uploads[upload_id] = _Upload(request.groups[0], request.json())
            session = f"{self.url}{request.path}?uploadType=resumable&upload_id={upload_id}"
            return Response(200, b"", {"Location": session})
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.body
        )
        resource_part, data_part = list(message.iter_parts())
        resource = json.loads(resource_part.get_payload(decode=True))
        return Response.json(self._run_job(request.groups[0], resource, data_part.get_payload(decode=True)))

    def _upload_chunk(self, request: Request) -> Response:
        """One PUT of a resumable session: ``Content-Range: bytes FIRST-LAST/TOTAL`` (TOTAL ``*``
        while unknown). Until the last byte: 308 Resume Incomplete with the ``Range`` received;
        then 200 with the job, as https://cloud.google.com/bigquery/docs/reference/api-uploads#resumable."""
        upload = self._uploads.get(request.query.get("upload_id", ""))
        if upload is None:
            return Response.error(404, "Not found: upload session", "notFound")
        match = _CONTENT_RANGE.fullmatch(request.headers.get("content-range", ""))
        if match is None:
            return Response.error(400, f"bad Content-Range {request.headers.get('content-range')!r}")
        first, last, total = match.groups()
        if first is not None:
            if int(first) != len(upload.data) or int(last) - int(first) + 1 != len(request.body):
                return Response.error(
                    400, f"chunk bytes {first}-{last} do not follow the {len(upload.data)} bytes received"
                )
            final = total != "*" and int(last) + 1 == int(total)
            if not final and len(request.body) % _CHUNK_QUANTUM:
                return Response.error(400, "a chunk other than the last must be a multiple of 256 KiB")
            upload.data += request.body
        if total == "*" or len(upload.data) < int(total):
            return Response(308, b"", {"Range": f"bytes=0-{len(upload.data) - 1}"})
        del self._uploads[request.query["upload_id"]]
        return Response.json(self._run_job(upload.project, upload.resource, bytes(upload.data)))

    def _get_job(self, request: Request) -> Response:
        job = self._job(request)
        return (
            Response.json(job)
            if job
            else Response.error(404, f"Not found: Job {request.groups[1]}", "notFound")
        )

    def _get_results(self, request: Request) -> Response:
        job = self._job(request)
        job_id = request.groups[1]
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

    def _job(self, request: Request) -> dict | None:
        """A job is found only in its own location (the client sends ``location`` with each get)."""
        job = self.jobs.get(request.groups[1])
        asked = request.query.get("location")
        if job and asked and not _same_location(asked, job["jobReference"]["location"]):
            return None
        return job

    def _get_dataset(self, request: Request) -> Response:
        project, dataset = request.groups
        if dataset not in self.datasets:
            return Response.error(404, f"Not found: Dataset {project}:{dataset}", "notFound")
        return Response.json(
            {
                "kind": "bigquery#dataset",
                "id": f"{project}:{dataset}",
                "datasetReference": {"projectId": project, "datasetId": dataset},
                "location": self.datasets[dataset],
            }
        )

    def _get_table(self, request: Request) -> Response:
        project, dataset, table = request.groups
        if not self._exists(dataset, table):
            return Response.error(404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        return Response.json(self._table_resource(project, dataset, table))

    def _patch_table(self, request: Request) -> Response:
        """tables.patch (``client.update_table``): only the partition expiration may change;
        "you cannot change an existing table's partitioning"
        (https://cloud.google.com/bigquery/docs/managing-partitioned-tables#partition-expiration,
        https://cloud.google.com/bigquery/docs/creating-partitioned-tables)."""
        project, dataset, table = request.groups
        if not self._exists(dataset, table):
            return Response.error(404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        spec = self.specs.setdefault((dataset, table), TableSpec())
        patch = request.json()
        unsupported = set(patch) - {"timePartitioning", "tableReference", "expirationTime"}
        if unsupported:
            return Response.error(
                400, f"the fake patches timePartitioning and expirationTime only, not {sorted(unsupported)}"
            )
        if "expirationTime" in patch:
            # https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#Table.FIELDS.expiration_time
            spec.expiration_time = patch["expirationTime"]
        if "timePartitioning" in patch:
            partitioning = patch["timePartitioning"]
            if partitioning.get("field") != spec.partition_field or partitioning.get("type", "DAY") != "DAY":
                return Response.error(400, "Cannot change partitioning spec of an existing table.")
            expiration = partitioning.get("expirationMs")
            spec.expiration_ms = None if expiration is None else int(expiration)
        return Response.json(self._table_resource(project, dataset, table))

    def _table_resource(self, project: str, dataset: str, table: str) -> dict:
        resource: dict = {
            "kind": "bigquery#table",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": [_field(f) for f in self._schema(dataset, table)]},
            "location": self.datasets[dataset],
        }
        spec = self.specs.get((dataset, table), TableSpec())
        if spec.expiration_time is not None:
            resource["expirationTime"] = spec.expiration_time
        if spec.partition_field:
            resource["timePartitioning"] = {"type": "DAY", "field": spec.partition_field}
            if spec.expiration_ms is not None:
                resource["timePartitioning"]["expirationMs"] = str(spec.expiration_ms)
        if spec.clustering:
            resource["clustering"] = {"fields": spec.clustering}
        return resource

    # --- jobs

    def _run_job(self, project: str, resource: dict, data: bytes | None) -> dict:
        reference = {"projectId": project, "jobId": uuid.uuid4().hex, **resource.get("jobReference", {})}
        configuration = resource["configuration"]
        status: dict = {"state": "DONE"}
        statistics: dict = {"creationTime": "1", "startTime": "1", "endTime": "2"}
        try:
            _check_labels(configuration.get("labels") or {})
            with self._lock:
                if "query" in configuration:
                    statistics["query"] = self._query(project, reference, configuration["query"])
                    statistics["totalBytesProcessed"] = statistics["query"]["totalBytesProcessed"]
                elif "extract" in configuration:
                    statistics["extract"] = self._extract(project, reference, configuration["extract"])
                elif data is None:
                    statistics["load"] = self._load_from_uris(project, reference, configuration["load"])
                else:
                    self._load(project, reference, configuration["load"], data)
        except (JobError, duckdb.Error, sqlglot.errors.ParseError) as error:
            reason = getattr(error, "reason", "invalidQuery")
            status.update(
                errorResult={"reason": reason, "message": str(error)},
                errors=[{"reason": reason, "message": str(error)}],
            )
        reference.setdefault("location", self.location)
        job = {
            "kind": "bigquery#job",
            "id": f"{project}:{reference['location']}.{reference['jobId']}",
            "jobReference": reference,
            "configuration": configuration,
            "status": status,
            "statistics": statistics,
        }
        self.jobs[reference["jobId"]] = job
        return job

    def _locate(self, project: str, reference: dict, datasets: set[str]) -> None:
        """A job runs in one location: the one it names, else that of the datasets it touches.

        "You cannot query data in one location and write the results to a table in another
        location", and a dataset elsewhere is reported missing: "Not found: Dataset p:d was not
        found in location L" (https://cloud.google.com/bigquery/docs/locations#specify_locations).
        """
        location = reference.get("location") or next(
            (self.datasets[d] for d in sorted(datasets) if d in self.datasets), self.location
        )
        reference["location"] = location
        for dataset in sorted(datasets):
            if dataset not in self.datasets or not _same_location(self.datasets[dataset], location):
                raise JobError(
                    "notFound", f"Not found: Dataset {project}:{dataset} was not found in location {location}"
                )

    def _analyze(self, project: str, job_id: str, config: dict) -> None:
        """GoogleSQL's analyzer, against the tables as they are now and the job's parameter types.

        BigQuery resolves every statement before it runs any of it, and answers ``invalidQuery``
        with the message and ``[at line:column]`` of the first error:
        https://cloud.google.com/bigquery/docs/error-messages (invalidQuery).
        """
        default = config.get("defaultDataset", {}).get("datasetId")
        tables: dict[str, dict[str, str]] = {}
        for dataset, table in self.db.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall():
            if dataset not in self.datasets:
                continue
            columns = {f.name: _bq_type(f.type) for f in self._schema(dataset, table)}
            for path in (f"{project}.{dataset}.{table}", f"{dataset}.{table}"):
                tables[path] = columns
            if dataset == default:
                tables[table] = columns
        parameters = {
            p["name"]: _parameter_type(p["parameterType"]) for p in config.get("queryParameters", [])
        }
        try:
            self.analyzer.analyze(config["query"], tables=tables, parameters=parameters)
        except GoogleSQLError as error:
            where = "" if error.line is None else f" at [{error.line}:{error.column}]"
            raise JobError("invalidQuery", f"{error.message}{where}") from None
        self.analyzed[job_id] = config["query"]

    def _query(self, project: str, reference: dict, config: dict) -> dict:
        self._analyze(project, reference["jobId"], config)
        statement = sqlglot.parse_one(config["query"], read="bigquery")
        default = config.get("defaultDataset", {}).get("datasetId")
        ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
        tables = [table for table in statement.find_all(exp.Table) if table.name not in ctes]
        destination = config.get("destinationTable")
        touched = {table.db or default for table in tables}
        if destination:
            touched.add(destination["datasetId"])
        self._locate(project, reference, {d for d in touched if d})
        if default:
            self.db.execute(f"SET schema = '{default}'")
        params = {p["name"]: _parameter(p) for p in config.get("queryParameters", [])}
        processed = self._processed(statement, tables, default, params)
        billed = max(_MIN_BILLED, processed) if isinstance(statement, exp.Query) else 0
        limit = config.get("maximumBytesBilled")
        if limit is not None and billed > int(limit):
            raise JobError(
                "bytesBilledLimitExceeded",
                f"Query exceeded limit for bytes billed: {limit}. {billed} or higher required.",
            )
        for table in statement.find_all(exp.Table):
            table.set("catalog", None)  # datasets are schemas; projects are not modelled
        sql = to_duckdb(statement.sql(dialect="bigquery"))
        if isinstance(statement, exp.Create):
            self._create(statement, sql, default)
        else:
            result = self.db.execute(sql, params)
            if isinstance(statement, exp.Query):
                rows = result.to_arrow_table()
                if destination:
                    self._write(destination, rows, config)
                self.results[reference["jobId"]] = rows
        return {"totalBytesProcessed": str(processed), "totalBytesBilled": str(billed), "cacheHit": False}

    def _processed(self, statement: exp.Expression, tables: list[exp.Table], default, params) -> int:
        """8 bytes a cell of the partitions each table reference reads.

        BigQuery prunes partitions when the filter on the partitioning column compares it with a
        constant expression (parameters included), and not when it depends on a subquery or on
        other columns: https://cloud.google.com/bigquery/docs/querying-partitioned-tables#use_a_constant_filter_expression
        """
        filters: dict[tuple[str, str], list[str | None]] = {}
        for table in tables:
            key = (table.db or default, table.name)
            if not self._exists(*key):
                continue
            spec = self.specs.get(key, TableSpec())
            filters.setdefault(key, []).append(_pruning_filter(table, spec.partition_field))
        processed = 0
        for (dataset, table), wheres in filters.items():
            where = "TRUE" if None in wheres else " OR ".join(f"({w})" for w in wheres)
            sql = to_duckdb(f"SELECT COUNT(*) FROM `{dataset}`.`{table}` WHERE {where}")  # noqa: S608
            used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
            rows = self.db.execute(sql, used).fetchall()[0][0]
            processed += rows * len(self._schema(dataset, table)) * 8
        return processed

    def _create(self, statement: exp.Create, sql: str, default: str | None) -> None:
        table = statement.find(exp.Table)
        dataset = table.db or default
        existed = self._exists(dataset, table.name)
        self.db.execute(sql)
        if existed:
            return
        partition = statement.find(exp.PartitionedByProperty)
        cluster = statement.find(exp.ClusterProperty)
        self.specs[(dataset, table.name)] = TableSpec(
            partition.this.name if partition is not None else None,
            [column.name for column in cluster.expressions] if cluster is not None else [],
        )

    def _load(self, project: str, reference: dict, config: dict, data: bytes | None) -> None:
        self._locate(project, reference, {config["destinationTable"]["datasetId"]})
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
            self.specs.pop((dataset, table), None)
        return Response(204)

    def _extract(self, project: str, reference: dict, config: dict) -> dict:
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
        self._locate(project, reference, {dataset})
        if not self._exists(dataset, table):
            raise JobError("notFound", f"Not found: Table {source['projectId']}:{dataset}.{table}")
        rows = self.table(dataset, table)
        (uri,) = config["destinationUris"]  # the fake writes one URI's files
        if not uri.startswith("gs://") or uri.count("*") > 1:
            raise JobError("invalid", f"Invalid destination URI {uri!r}: gs:// with at most one '*'")
        size = rows.num_rows * rows.num_columns * 8  # the bytes estimate of a query's scan
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

    def _load_from_uris(self, project: str, reference: dict, config: dict) -> dict:
        """A load job from Cloud Storage: each source URI may hold one '*' after the bucket name
        (https://cloud.google.com/bigquery/docs/batch-loading-data#load-wildcards); a URI that
        matches no object fails the job."""
        self._locate(project, reference, {config["destinationTable"]["datasetId"]})
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
        wanted = TableSpec(
            config.get("timePartitioning", {}).get("field"), config.get("clustering", {}).get("fields", [])
        )
        self.db.register("incoming", rows)
        try:
            if not self._exists(dataset, table):
                if config.get("createDisposition", "CREATE_IF_NEEDED") != "CREATE_IF_NEEDED":
                    raise JobError("notFound", f"Not found: Table {dataset}.{table}")
                self.db.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming LIMIT 0")  # noqa: S608
                self.specs[(dataset, table)] = wanted
            spec = self.specs.setdefault((dataset, table), TableSpec())
            self._check_spec(spec, wanted, config)
            self._add_columns(dataset, table, rows, config)
            where = "TRUE"
            if decorator:
                if spec.partition_field is None:
                    raise JobError(
                        "invalid",
                        f"{dataset}.{table} is not partitioned: no partition decorator ${decorator}",
                    )
                day = dt.datetime.strptime(decorator, "%Y%m%d").date()
                outside = self.db.execute(
                    f'SELECT count(*) FROM incoming WHERE "{spec.partition_field}" IS DISTINCT FROM $day',  # noqa: S608
                    {"day": day},
                ).fetchall()[0][0]  # fetchall: a pending result blocks unregister
                if outside:
                    raise JobError(
                        "invalid", f"{outside} rows do not belong to the partition {table}${decorator}"
                    )
                where = f"\"{spec.partition_field}\" = DATE '{day}'"
            disposition = config.get("writeDisposition", "WRITE_EMPTY")
            if disposition == "WRITE_TRUNCATE":
                self.db.execute(f"DELETE FROM {name} WHERE {where}")  # noqa: S608
            elif (
                disposition == "WRITE_EMPTY"
                and self.db.execute(f"SELECT count(*) FROM {name} WHERE {where}").fetchall()[0][0]  # noqa: S608
            ):
                raise JobError("duplicate", f"Table {dataset}.{table} is not empty")
            self.db.execute(f"INSERT INTO {name} BY NAME SELECT * FROM incoming")  # noqa: S608
        finally:
            self.db.unregister("incoming")

    @staticmethod
    def _check_spec(existing: TableSpec, wanted: TableSpec, config: dict) -> None:
        """A job that states a destination's partitioning or clustering must state the table's.

        BigQuery answers "Incompatible table partitioning specification. Expects partitioning
        specification interval(type:day,field:F) clustering(C), but input partitioning
        specification is ..." (seen in GoogleCloudDataproc/spark-bigquery-connector#164; the rule:
        https://cloud.google.com/bigquery/docs/creating-partitioned-tables#limitations, "you
        cannot change an existing table's partitioning", and the clustering of a destination
        written by a query or load job must match the table's).
        """
        if "timePartitioning" not in config and "clustering" not in config:
            return
        if (existing.partition_field, existing.clustering) != (wanted.partition_field, wanted.clustering):
            raise JobError(
                "invalid",
                "Incompatible table partitioning specification. Expects partitioning specification "
                f"{existing.described()}, but input partitioning specification is {wanted.described()}",
            )

    def _add_columns(self, dataset: str, table: str, rows: pa.Table, config: dict) -> None:
        existing = set(self._schema(dataset, table).names)
        new = [column for column in rows.schema if column.name not in existing]
        if new and "ALLOW_FIELD_ADDITION" not in config.get("schemaUpdateOptions", []):
            raise JobError(
                "invalid",
                f"Provided Schema does not match Table {dataset}.{table}: new fields {[f.name for f in new]}",
            )
        for column in new:
            self.db.execute(
                f'ALTER TABLE "{dataset}"."{table}" ADD COLUMN "{column.name}" {_duck_type(column.type)}'
            )

    def _schema(self, dataset: str, table: str) -> pa.Schema:
        return self.db.execute(f'SELECT * FROM "{dataset}"."{table}" LIMIT 0').to_arrow_table().schema  # noqa: S608

    def _exists(self, dataset: str, table: str) -> bool:
        found = self.db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $s AND table_name = $t",
            {"s": dataset, "t": table},
        ).fetchall()[0][0]
        return bool(found)


def _same_location(a: str, b: str) -> bool:
    # Location names are case-insensitive ("US" and "us", "asia-northeast1").
    return a.lower() == b.lower()


def _pruning_filter(table: exp.Table, partition_field: str | None) -> str | None:
    """The conjuncts of the WHERE around ``table`` that restrict its partition column to constants,
    as BigQuery SQL over that column alone; None when they select every partition."""
    select = table.find_ancestor(exp.Select)
    where = select.args.get("where") if select is not None else None
    if partition_field is None or where is None:
        return None
    names = {table.alias_or_name, table.name}
    kept = []
    for condition in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        columns = list(condition.find_all(exp.Column))
        on_partition = [c for c in columns if c.name == partition_field and (not c.table or c.table in names)]
        if (
            isinstance(condition, exp.EQ | exp.GT | exp.GTE | exp.LT | exp.LTE | exp.Between | exp.In)
            and len(columns) == len(on_partition) == 1
            and condition.find(exp.Subquery, exp.Select) is None
        ):
            unqualified = condition.copy()
            unqualified.find(exp.Column).set("table", None)
            kept.append(unqualified.sql(dialect="bigquery"))
    return " AND ".join(kept) or None


def _parameter_type(parameter_type: dict) -> str:
    if parameter_type["type"] == "ARRAY":
        return f"ARRAY<{_parameter_type(parameter_type['arrayType'])}>"
    return parameter_type["type"]


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
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )
