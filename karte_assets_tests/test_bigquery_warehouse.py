"""The BigQuery warehouse: google-cloud-bigquery against a loopback BigQuery that runs each job
on DuckDB, compared with the local DuckDB path on the same data."""

import datetime as dt
import logging
import re
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests
import sqlglot
from dagster import AssetExecutionContext, MaterializeResult, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_gcp import GCSResource
from google.api_core.exceptions import BadRequest, NotFound
from google.cloud import bigquery
from google.cloud.bigquery import client as bigquery_client
from sqlglot import exp

from karte_assets.assets.common import daily_asset, for_each_day, rows_metadata
from karte_assets.definitions import ASSETS
from karte_assets.report import newest_day
from karte_assets.resources.bigquery_warehouse import BigQueryWarehouse, declared_layout
from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.sql import SQL_DIR, bigquery_sql
from karte_assets_tests.fakes.bigquery import FakeBigQuery, LoopbackBigQuery
from karte_assets_tests.fakes.gcs import emulated_gcs
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with, failure_message

PROJECT, DATASET, LOCATION, BUCKET = "karte-proj", "karte_test", "asia-northeast1", "karte-test"
EVENTS = f"{PROJECT}.tracking.events"
TABLES = [a.key.path[-1] for a in ASSETS]
VOLATILE = {"loyalty_model": ["trained_at", "model_uri"]}


@pytest.fixture
def gcs(monkeypatch):
    with emulated_gcs(monkeypatch, BUCKET) as service:
        yield service


@pytest.fixture
def fake(googlesql, gcs):
    service = FakeBigQuery(googlesql, location=LOCATION, gcs=gcs).start()
    service.create_dataset(DATASET)
    yield service
    service.stop()


def warehouse_on(fake: FakeBigQuery, location: str = LOCATION, **fields) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        bigquery=LoopbackBigQuery(project=PROJECT, location=location, url=fake.url),
        dataset=DATASET,
        events_table=EVENTS,
        **fields,
    )


def create_events(fake: FakeBigQuery, events: pd.DataFrame | None = None) -> None:
    """The existing events table, partitioned by day on event_ts (empty: the synthetic source)."""
    if events is None:
        events = pd.DataFrame(
            {
                "user_id": pd.Series([], dtype="string"),
                "event_ts": pd.Series([], dtype="datetime64[us, UTC]"),
                "event_name": pd.Series([], dtype="string"),
                "value": pd.Series([], dtype="float64"),
                "properties": pd.Series([], dtype="string"),
            }
        )
    fake.create("tracking", "events", pa.Table.from_pandas(events, preserve_index=False), "event_ts")


def canonical(frame: pd.DataFrame, drop: list[str] = ()) -> pd.DataFrame:
    """Same values, same order, whichever engine wrote them: timestamps as naive UTC."""
    frame = frame.drop(columns=list(drop))
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].astype("datetime64[us]")
    frame = frame[sorted(frame.columns)]
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def sent_queries(fake: FakeBigQuery) -> list[dict]:
    """The query configurations sent, with the job's labels."""
    return [
        {**r.json()["configuration"]["query"], "labels": r.json()["configuration"].get("labels", {})}
        for r in fake.requests
        if r.method == "POST"
        and r.path.startswith("/bigquery/")
        and r.path.endswith("/jobs")
        and "query" in r.json()["configuration"]
    ]


@pytest.mark.slow
def test_the_graph_on_bigquery_gives_the_local_graphs_tables(fake, tmp_path):
    last = FIRST_DAY + dt.timedelta(days=14)  # the first day with a model to train
    local = LocalGraph(tmp_path / "local")
    assert local.materialize(FIRST_DAY, last).success

    create_events(fake)
    cloud = LocalGraph(tmp_path / "cloud")
    cloud.resources["warehouse"] = warehouse_on(fake)
    cloud.resources["model_store"] = GcsModelStore(
        bucket=BUCKET, prefix="karte/test", gcs=GCSResource(project=PROJECT)
    )
    result = cloud.materialize(FIRST_DAY, last)
    assert result.success

    for name in TABLES:
        expected = canonical(local.table(name), VOLATILE.get(name, []))
        actual = canonical(fake.table(DATASET, name).to_pandas(date_as_object=False), VOLATILE.get(name, []))
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False, obj=name)
    assert (fake.table(DATASET, "loyalty_model").to_pandas()["status"] == "trained").sum() == 1

    # Training data and the scoring audience never reach this process: their query jobs are only
    # waited for (getQueryResults with maxResults=0), never read, and no table's rows are listed.
    # The rows went BigQuery -> extract job -> GCS -> training / scoring job -> GCS -> load job.
    bulk = {
        job_id
        for job_id, job in fake.jobs.items()
        if job["configuration"].get("labels", {}).get("karte_query") in ("training_data", "scoring_features")
    }
    assert len(bulk) >= 2
    reads = [r for r in fake.requests if r.path.rsplit("/", 1)[-1] in bulk and "/queries/" in r.path]
    assert reads and all(r.query.get("maxResults") == "0" for r in reads)
    assert not [r for r in fake.requests if r.path.endswith("/data")]
    assert any(j["configuration"].get("extract") for j in fake.jobs.values())
    assert any(j["configuration"].get("load", {}).get("sourceUris") for j in fake.jobs.values())

    # Every statement sent is exactly what GoogleSQL's analyzer accepted, and every query file of
    # the graph was sent.
    queries = sent_queries(fake)
    query_jobs = {job_id: job for job_id, job in fake.jobs.items() if "query" in job["configuration"]}
    assert len(query_jobs) == len(queries) and all(
        "errorResult" not in j["status"] for j in query_jobs.values()
    )
    assert {
        job_id: job["configuration"]["query"]["query"] for job_id, job in query_jobs.items()
    } == fake.analyzed
    used = {query["labels"]["karte_query"] for query in queries}
    # Besides the query files, the warehouse builds two statements itself (a staged load merged into
    # its partition, and the count of a write's rows); the analyzer checked those too (above).
    assert used - {"load", "partition_client_rows"} <= {path.stem for path in SQL_DIR.glob("*.sql")}
    assert {
        *("user_daily_activity", "user_profile", "user_features", "loyalty_training_set", "training_data"),
        *(
            "scoring_features",
            "latest_model",
            "partition_log_table",
            "partition_log_insert",
            "partition_logged",
        ),
    } <= used

    # The bytes each asset's jobs processed, as BigQuery reported them, are in its metadata.
    for name in ("user_daily_activity", "user_features"):
        reported = sum(
            int(job["statistics"]["query"]["totalBytesProcessed"])
            for job in fake.jobs.values()
            if "query" in job["configuration"]
            and job["configuration"]["labels"].get("dagster_asset") == name
            and job["configuration"]["labels"]["dagster_run_id"] == result.run_id
        )
        metadata = result.asset_materializations_for_node(name)[-1].metadata
        assert metadata["bigquery_bytes_processed"].value == reported > 0


def test_raw_events_from_the_existing_events_table_match_the_local_load(fake, tmp_path):
    local = LocalGraph(tmp_path / "local")
    local.materialize(FIRST_DAY, FIRST_DAY + dt.timedelta(days=3), selection=["raw_events"])
    events = local.table("raw_events").drop(columns=["partition_date"])
    # The events table keeps UTC days; the graph's days are Asia/Tokyo days, 9 hours ahead.
    create_events(fake, events.assign(event_ts=pd.to_datetime(events["event_ts"], utc=True)))

    cloud = LocalGraph(tmp_path / "cloud")
    cloud.resources["warehouse"] = warehouse_on(fake)
    second, third = FIRST_DAY + dt.timedelta(days=1), FIRST_DAY + dt.timedelta(days=2)
    run_config = config_with(raw_events={"source": "bigquery"})
    assert cloud.materialize(second, third, run_config=run_config, selection=["raw_events"]).success

    expected = canonical(local.table("raw_events").query("@second <= partition_date <= @third"))
    assert len(expected) > 100
    pd.testing.assert_frame_equal(
        canonical(fake.table(DATASET, "raw_events").to_pandas(date_as_object=False)),
        expected,
        check_dtype=False,
    )
    (query,) = [q for q in sent_queries(fake) if q["labels"]["karte_query"] == "raw_events_from_table"][:1]
    assert "FROM `karte-proj`.`tracking`.`events`" in query["query"]


def test_the_bigquery_source_needs_the_bigquery_warehouse(tmp_path):
    graph = LocalGraph(tmp_path / "local")
    result = graph.materialize(
        FIRST_DAY,
        run_config=config_with(raw_events={"source": "bigquery"}),
        selection=["raw_events"],
        raise_on_error=False,
    )
    assert not result.success
    assert (
        'source "bigquery" (clients default) reads KARTE_BQ_EVENTS_TABLE: it needs KARTE_ENV=dev or prod'
        in failure_message(result)
    )
    assert graph.table("raw_events").empty and graph.table("raw_event_rejects").empty


DAY = dt.date(2026, 6, 3)


def events_frame(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "event_ts": pd.to_datetime(["2026-06-02 16:00", "2026-06-02 16:10", "2026-06-03 01:00"]),
            "event_name": ["view", "purchase", "view"],
            "value": [0.0, 12.5, 0.0],
            "properties": [None, None, '{"page": "top"}'],
        }
    ).head(rows)


@daily_asset()  # its jobs carry its asset_labels
def writes(context: AssetExecutionContext, warehouse: Warehouse) -> None:
    warehouse.ensure_table("raw_events_table")
    warehouse.replace_partition_with_rows("raw_events", DAY, events_frame())
    warehouse.replace_partitions(
        "user_daily_activity", [DAY], "user_daily_activity", {"session_gap_seconds": 1800}
    )


def test_a_partition_write_replaces_exactly_that_partition_through_its_decorator(fake):
    warehouse = warehouse_on(fake, maximum_bytes_billed=5 * 2**30)
    result = materialize([writes], resources={"warehouse": warehouse}, partition_key=DAY.isoformat())
    assert result.success

    # The rows go to a staging table first: a load into the partition decorator with WRITE_TRUNCATE
    # would replace every client's rows of the day ("If you use WRITE_TRUNCATE, the partition's data
    # is overwritten", https://cloud.google.com/bigquery/docs/managing-partitioned-table-data#write_to_a_specific_partition),
    # where a write replaces only the rows of its clients. A query then writes the partition.
    (load,) = [r for r in fake.requests if r.path.startswith("/upload/")]
    assert load.query["uploadType"] == "multipart"
    body = load.body.decode("latin-1")
    assert '"tableId": "load_raw_events_' in body and "$" not in body.split('"tableId": ')[1].split(",")[0]
    assert '"writeDisposition": "WRITE_TRUNCATE"' in body and '"sourceFormat": "PARQUET"' in body
    stored = fake.db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATASET]
    ).fetchall()
    assert not [name for (name,) in stored if name.startswith("load_")]  # the staging table is dropped

    writes_by_table = {
        q["destinationTable"]["tableId"]: q for q in sent_queries(fake) if q.get("destinationTable")
    }
    assert set(writes_by_table) == {f"raw_events${DAY:%Y%m%d}", f"user_daily_activity${DAY:%Y%m%d}"}
    write = writes_by_table[f"user_daily_activity${DAY:%Y%m%d}"]
    assert write["destinationTable"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
        "tableId": f"user_daily_activity${DAY:%Y%m%d}",
    }
    assert write["writeDisposition"] == "WRITE_TRUNCATE"
    assert write["timePartitioning"] == {"type": "DAY", "field": "partition_date"}
    assert write["clustering"] == {"fields": ["client_id", "user_id"]}
    assert write["defaultDataset"] == {"projectId": PROJECT, "datasetId": DATASET}
    assert write["maximumBytesBilled"] == str(5 * 2**30)
    assert write["labels"] == {
        "karte_query": "user_daily_activity",
        "dagster_asset": "writes",
        "dagster_partition": "2026-06-03",
        "dagster_run_id": result.run_id,
    }
    parameters = {
        p["name"]: (
            p["parameterType"].get("arrayType", p["parameterType"])["type"],
            p["parameterValue"].get("value")
            or [v["value"] for v in p["parameterValue"].get("arrayValues", [])],
        )
        for p in write["queryParameters"]
    }
    assert parameters == {
        "partition_date": ("DATE", "2026-06-03"),
        # A range query, written one day per decorator write.
        "first_date": ("DATE", "2026-06-03"),
        "last_date": ("DATE", "2026-06-03"),
        "session_gap_seconds": ("INT64", "1800"),
        "client_ids": ("STRING", ["default"]),
        "write_clients": ("STRING", ["default"]),
    }
    assert "2026-06-03" not in write["query"] and "@partition_date" in write["query"]

    # A re-run and a neighbouring day: the day is replaced, never doubled; other days stay.
    warehouse.replace_partitions(
        "user_daily_activity",
        [DAY - dt.timedelta(days=1)],
        "user_daily_activity",
        {"session_gap_seconds": 1800},
    )
    assert materialize([writes], resources={"warehouse": warehouse}, partition_key=DAY.isoformat()).success
    activity = fake.table(DATASET, "user_daily_activity").to_pandas()
    assert sorted(activity["user_id"]) == ["u1", "u2"]
    assert warehouse.partition_exists("user_daily_activity", DAY)
    assert not warehouse.partition_exists("user_daily_activity", DAY + dt.timedelta(days=1))


def test_a_query_over_the_bytes_guard_fails_naming_the_query(fake):
    warehouse = warehouse_on(fake, maximum_bytes_billed=1000)
    warehouse.ensure_table("raw_events_table")
    with pytest.raises(
        RuntimeError, match=r"\(event_counts\) failed: .*exceeded limit for bytes billed: 1000"
    ):
        warehouse.query("event_counts", {"partition_date": DAY})


def client_of(fake: FakeBigQuery, location: str = LOCATION) -> bigquery.Client:
    with LoopbackBigQuery(project=PROJECT, location=location, url=fake.url).get_client() as client:
        return client


def test_every_table_is_created_from_its_declared_ddl_and_written_with_its_clustering(fake):
    warehouse = warehouse_on(fake)
    assert materialize([writes], resources={"warehouse": warehouse}, partition_key=DAY.isoformat()).success

    client = client_of(fake)
    for table in ("raw_events", "user_daily_activity"):
        stored = client.get_table(f"{PROJECT}.{DATASET}.{table}")
        assert (stored.time_partitioning.field, stored.clustering_fields) == declared_layout(table)
        assert declared_layout(table) == ("partition_date", ["client_id", "user_id"])
        # Created from the DDL (every declared column, in order), not from the first rows written.
        _, columns = fake.analyzer.declared_table(bigquery_sql(f"{table}_table"))
        assert [(f.name, f.field_type) for f in stored.schema] == list(columns.items())
    # The rows are loaded into an unclustered staging table; the query that writes the partition
    # from it states the destination's layout (see the decorator test).
    (load,) = [job["configuration"]["load"] for job in fake.jobs.values() if "load" in job["configuration"]]
    assert load["destinationTable"]["tableId"].startswith("load_raw_events_") and "clustering" not in load


def test_a_table_first_written_by_a_load_still_has_its_declared_columns_and_types(fake):
    # Rows as a caller might produce them: a column missing, a score that happens to be whole.
    rows = pd.DataFrame({"user_id": ["u1", "u2"], "loyal_score": [1, 0], "score_rank": [1, 2]})
    warehouse_on(fake).replace_partition_with_rows("loyalty_scores", DAY, rows)
    stored = client_of(fake).get_table(f"{PROJECT}.{DATASET}.loyalty_scores")
    _, columns = fake.analyzer.declared_table(bigquery_sql("loyalty_scores_table"))
    assert [(f.name, f.field_type) for f in stored.schema] == list(columns.items())
    assert stored.clustering_fields == ["client_id", "user_id"]


def test_the_fake_refuses_a_destination_whose_partitioning_or_clustering_differs(fake):
    client = client_of(fake)
    client.query(
        bigquery_sql("raw_events_table"),
        job_config=bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.{DATASET}"),
    ).result()
    config = bigquery.QueryJobConfig(
        destination=f"{PROJECT}.{DATASET}.raw_events$20260603",
        write_disposition="WRITE_TRUNCATE",
        time_partitioning=bigquery.TimePartitioning(field="partition_date"),
    )
    select = "SELECT DATE '2026-06-03' AS partition_date, 'default' AS client_id, 'u1' AS user_id"
    with pytest.raises(BadRequest) as refused:
        client.query(select, job_config=config).result()
    assert (
        "Incompatible table partitioning specification. Expects partitioning specification "
        "interval(type:day,field:partition_date) clustering(client_id,user_id), but input partitioning "
        "specification is interval(type:day,field:partition_date)"
    ) in refused.value.message
    assert fake.table(DATASET, "raw_events").num_rows == 0
    config.clustering_fields = ["client_id", "user_id"]
    client.query(select, job_config=config).result()
    assert fake.table(DATASET, "raw_events").num_rows == 1


def test_the_fake_refuses_what_googlesql_refuses_before_running_anything(fake):
    client = client_of(fake)
    config = bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.{DATASET}")
    client.query(bigquery_sql("raw_events_table"), job_config=config).result()
    for statement, error in [
        ("SELECT COUNT(*) AS rows FROM raw_events", "Syntax error: Unexpected keyword ROWS at [1:20]"),
        (
            "INSERT INTO raw_events (user_id) SELECT 1::STRING",
            'Syntax error: Expected end of input but got ":" at [1:42]',
        ),
        (
            "INSERT INTO raw_events (user_id) SELECT no_such_column FROM raw_events",
            "Unrecognized name: no_such_column at [1:41]",
        ),
        ("DELETE FROM raw_events WHERE COUNT_IF(value > 0) > 0", "Function not found: COUNT_IF"),
    ]:
        job = client.query(statement, job_config=config)
        with pytest.raises(BadRequest, match=re.escape(error)):
            job.result()
        assert fake.jobs[job.job_id]["status"]["errorResult"]["reason"] == "invalidQuery"
        assert job.job_id not in fake.analyzed
    assert list(fake.analyzed.values()) == [bigquery_sql("raw_events_table")]  # only the DDL passed


def test_a_job_in_another_location_than_its_datasets_fails(fake):
    create_events(fake)
    warehouse_on(fake).ensure_table("raw_events_table")
    with pytest.raises(
        NotFound, match=f"Not found: Dataset {PROJECT}:{DATASET} was not found in location EU"
    ):
        client_of(fake, "EU").query(
            "SELECT 1 AS one FROM raw_events",
            job_config=bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.{DATASET}"),
        ).result()
    with pytest.raises(RuntimeError) as mismatch:
        warehouse_on(fake, location="EU").hold_for_run("run-1", logging.getLogger(__name__))
    assert "jobs run in EU (KARTE_BQ_LOCATION)" in str(mismatch.value)
    assert f"{DATASET} is in {LOCATION}" in str(mismatch.value) and f"{EVENTS} is in {LOCATION}" in str(
        mismatch.value
    )
    warehouse_on(fake).hold_for_run("run-1", logging.getLogger(__name__))


def test_a_run_fails_up_front_when_the_events_table_is_in_another_location(fake, tmp_path):
    fake.create_dataset("tracking", "US")
    create_events(fake)
    cloud = LocalGraph(tmp_path / "cloud")
    cloud.resources["warehouse"] = warehouse_on(fake)
    result = cloud.materialize(FIRST_DAY, selection=["raw_events"], raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.to_string()
    assert f"{DATASET} is in {LOCATION} and the events table {EVENTS} is in US" in message
    assert not any(job["configuration"].get("load") for job in fake.jobs.values())


def test_a_load_over_5_mib_goes_through_a_resumable_upload_in_chunks(fake, monkeypatch):
    # The client switches to the resumable protocol from _MAX_MULTIPART_SIZE (5 MiB) and sends
    # chunks of _DEFAULT_CHUNKSIZE (100 MiB): a smaller chunk (a multiple of 256 KiB, as the
    # protocol wants) makes the 308 Resume Incomplete round trips happen here.
    monkeypatch.setattr(bigquery_client, "_DEFAULT_CHUNKSIZE", 2 * 2**20)
    rng = np.random.default_rng(7)
    users = 120_000
    rows = pd.DataFrame(
        {
            "user_id": [f"{n:032x}" for n in rng.integers(0, 2**63, users)],
            "event_ts": pd.Timestamp("2026-06-02 16:00")
            + pd.to_timedelta(rng.integers(0, 86_400, users), unit="s"),
            "event_name": rng.choice(["view", "click", "cart", "purchase"], users),
            "value": rng.random(users),
            "properties": [f'{{"n": {n}}}' for n in rng.integers(0, 2**62, users)],
        }
    )
    warehouse = warehouse_on(fake)
    assert warehouse.replace_partition_with_rows("raw_events", DAY, rows) == users

    uploads = [r for r in fake.requests if r.path.startswith("/upload/")]
    assert uploads[0].method == "POST" and uploads[0].query["uploadType"] == "resumable"
    chunks = [r for r in uploads if r.method == "PUT"]
    total = sum(len(r.body) for r in chunks)
    assert total > bigquery_client._MAX_MULTIPART_SIZE and len(chunks) >= 3
    assert [r.headers["content-range"].split("/")[0] for r in chunks[:2]] == [
        f"bytes 0-{2 * 2**20 - 1}",
        f"bytes {2 * 2**20}-{4 * 2**20 - 1}",
    ]
    assert chunks[-1].headers["content-range"].endswith(f"/{total}")
    stored = fake.table(DATASET, "raw_events").to_pandas()
    assert len(stored) == users and set(stored["user_id"]) == set(rows["user_id"])


def test_the_resumable_upload_refuses_a_chunk_that_skips_bytes(fake):
    response = requests.post(
        f"{fake.url}/upload/bigquery/v2/projects/{PROJECT}/jobs?uploadType=resumable",
        json={
            "configuration": {
                "load": {"destinationTable": {"projectId": PROJECT, "datasetId": DATASET, "tableId": "t"}}
            }
        },
        timeout=10,
    )
    session = response.headers["Location"]
    first = requests.put(
        session, data=b"x" * 256 * 1024, headers={"Content-Range": "bytes 0-262143/*"}, timeout=10
    )
    assert (first.status_code, first.headers["Range"]) == (308, "bytes=0-262143")
    gap = requests.put(
        session, data=b"x", headers={"Content-Range": "bytes 262145-262145/262146"}, timeout=10
    )
    assert gap.status_code == 400


def test_the_partition_log_is_appended_to_never_merged_and_readers_take_the_newest_row(fake):
    warehouse = warehouse_on(fake)
    for rows in (3, 2):
        warehouse.replace_partition_with_rows("raw_events", DAY, events_frame(rows))
    statements = [q["query"] for q in sent_queries(fake)]
    kinds = {type(sqlglot.parse_one(statement, read="bigquery")) for statement in statements}
    assert exp.Insert in kinds and not kinds & {exp.Merge, exp.Update, exp.Delete}
    log = client_of(fake).get_table(f"{PROJECT}.{DATASET}.partition_log")
    assert (log.time_partitioning.field, log.clustering_fields) == (
        "partition_date",
        ["table_name", "client_id"],
    )
    assert fake.table(DATASET, "partition_log").to_pandas()["row_count"].tolist() == [3, 2]
    (newest,) = warehouse.query("partition_logged", {"table_name": "raw_events", "partition_date": DAY})[
        "row_count"
    ]
    assert newest == 2
    assert warehouse.partition_exists("raw_events", DAY)
    assert not warehouse.partition_exists("raw_events", DAY + dt.timedelta(days=1))


def test_report_queries_read_only_the_newest_days_partition(fake):
    warehouse = warehouse_on(fake)
    days = [DAY - dt.timedelta(days=back) for back in (2, 1, 0)]
    for day in days:
        scores = pd.DataFrame(
            {
                "user_id": [f"u{n}" for n in range(50)],
                "loyal_score": [n / 50 for n in range(50)],
                "score_rank": list(range(50, 0, -1)),
                "score_decile": [1 + n // 5 for n in range(50)],
                "coupon_tier": ["A"] * 5 + ["B"] * 10 + ["none"] * 35,
                "model_version": ["v1"] * 50,
            }
        )
        warehouse.replace_partition_with_rows("loyalty_scores", day, scores)
    assert newest_day(warehouse, "loyalty_scores") == days[-1]
    summary = warehouse.query("score_summary", {"partition_date": days[-1]})
    top = warehouse.query("top_scores", {"partition_date": days[-1], "limit": 3})
    assert summary["users"].sum() == 50 and top["user_id"].tolist() == ["u49", "u48", "u47"]

    processed = {
        job["configuration"]["labels"]["karte_query"]: int(job["statistics"]["totalBytesProcessed"])
        for job in fake.jobs.values()
        if "query" in job["configuration"]
    }
    _, columns = fake.analyzer.declared_table(bigquery_sql("loyalty_scores_table"))
    one_day = 50 * len(columns) * 8  # 50 rows of the table's columns, 8 bytes a cell in the fake's estimate
    assert processed["score_summary"] == processed["top_scores"] == one_day
    # The same filter through a subquery (what these queries did) reads every day.
    client = client_of(fake)
    job = client.query(
        "SELECT COUNT(*) AS users FROM loyalty_scores "
        "WHERE partition_date = (SELECT MAX(partition_date) FROM loyalty_scores)",
        job_config=bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.{DATASET}"),
    )
    job.result()
    assert job.total_bytes_processed == 3 * one_day  # every day of the table


def test_per_day_snapshots_expire_after_the_retention_set_through_the_table_api(fake):
    warehouse = warehouse_on(fake, snapshot_retention_days=40)
    warehouse.ensure_table("raw_events_table")
    warehouse.ensure_table("user_daily_activity_table")
    warehouse.replace_partition("user_profile", DAY, "user_profile")
    warehouse.replace_partitions(
        "user_daily_activity", [DAY], "user_daily_activity", {"session_gap_seconds": 1800}
    )
    client = client_of(fake)
    expirations = {
        table: client.get_table(f"{PROJECT}.{DATASET}.{table}").time_partitioning.expiration_ms
        for table in ("user_profile", "user_daily_activity")
    }
    assert expirations == {"user_profile": 40 * 24 * 3600 * 1000, "user_daily_activity": None}
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.json()["timePartitioning"]["expirationMs"] for r in patches] == [str(40 * 24 * 3600 * 1000)]
    assert not [q for q in sent_queries(fake) if "expiration" in q["query"].lower()]


@daily_asset()
def rows_every_day(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """A write and a look-up per day of the run, as the graph's assets issue them."""
    warehouse.ensure_table("raw_events_table")

    def write(day: dt.date) -> int:
        rows = warehouse.replace_partition_with_rows("raw_events", day, events_frame())
        assert warehouse.partition_exists("raw_events", day)
        return rows

    return MaterializeResult(metadata=rows_metadata(for_each_day(context, warehouse, write)))


def test_a_run_makes_one_client_for_every_job_of_every_day(fake, monkeypatch):
    made = []
    real_get_client = LoopbackBigQuery.get_client

    @contextmanager
    def counting_get_client(self):
        with real_get_client(self) as client:
            made.append(client)
            yield client

    monkeypatch.setattr(LoopbackBigQuery, "get_client", counting_get_client)
    create_events(fake)
    made.clear()
    first, last = DAY - dt.timedelta(days=2), DAY
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
    }
    result = materialize([rows_every_day], resources={"warehouse": warehouse_on(fake)}, tags=tags)
    assert result.success
    # DDL, location check, three loads (each to a staging table, then a query into the day's
    # partition) and three partition look-ups: one client (one ADC look-up).
    assert len(made) == 1
    partitions = {
        job["configuration"]["query"]["destinationTable"]["tableId"]
        for job in fake.jobs.values()
        if job["configuration"].get("query", {}).get("destinationTable")
    }
    assert partitions == {f"raw_events${day:%Y%m%d}" for day in (first, DAY - dt.timedelta(days=1), last)}


def test_jobs_carry_the_labels_given_explicitly_and_bigquery_label_rules_are_enforced(fake):
    warehouse = warehouse_on(fake)
    with warehouse.labelled({"dagster_asset": "export", "dagster_run_id": "run-1"}):
        warehouse.ensure_table("raw_events_table")
    warehouse.ensure_table("partition_log_table")
    first, second = (job["configuration"]["labels"] for job in fake.jobs.values())
    assert first == {"dagster_asset": "export", "dagster_run_id": "run-1", "karte_query": "raw_events_table"}
    assert second == {"karte_query": "partition_log_table"}  # outside labelled(): only its own
    jobs = len(fake.jobs)
    # https://cloud.google.com/bigquery/docs/labels-intro#requirements
    for labels, named in [
        ({"Asset": "x"}, "'Asset'"),
        ({"1asset": "x"}, "'1asset'"),
        ({"a" * 64: "x"}, "'aaaa"),
        ({"asset": "Upper"}, "'Upper'"),
        ({"asset": "a.b"}, "'a.b'"),
        ({"asset": "x" * 64}, "'xxxx"),
        ({f"k{i}": "" for i in range(65)}, "65 job labels"),
    ]:
        with pytest.raises(ValueError, match=re.escape(named)), warehouse.labelled(labels):
            warehouse.ensure_table("raw_events_table")
    assert len(fake.jobs) == jobs  # refused before any job was sent
    # The fake refuses what BigQuery refuses: a job sent with a label it does not accept fails.
    config = bigquery.QueryJobConfig(labels={"Bad": "x"})
    with pytest.raises(BadRequest, match="Invalid label Bad"):
        client_of(fake).query("SELECT 1", job_config=config).result()


def test_a_staging_table_expires_hours_ahead_so_a_crashed_load_leaves_nothing_for_long(fake):
    warehouse = warehouse_on(fake)
    warehouse.ensure_table("raw_events_table")
    before = dt.datetime.now(dt.UTC)
    warehouse.replace_partition_with_rows("raw_events", DAY, events_frame())
    (patch,) = [r for r in fake.requests if r.method == "PATCH" and "/tables/load_raw_events_" in r.path]
    expires = dt.datetime.fromtimestamp(int(patch.json()["expirationTime"]) / 1000, dt.UTC)
    assert before + dt.timedelta(hours=1) < expires < before + dt.timedelta(hours=12)
    # Set before the rows are read from it into the partition.
    patched = fake.requests.index(patch)
    writes = [
        i
        for i, r in enumerate(fake.requests)
        if r.method == "POST" and "raw_events$" in r.body.decode("latin-1")
    ]
    assert writes and patched < min(writes)


def test_a_range_is_written_day_by_day_each_through_its_own_decorator(fake):
    # BigQuery replaces one partition per job (a decorator write): a range is one job per day, and
    # the rows of a range query or of a range of rows land on their own day's partition.
    warehouse = warehouse_on(fake)
    warehouse.ensure_table("raw_events_table")
    days = [DAY - dt.timedelta(days=1), DAY]
    events = events_frame().assign(partition_date=[days[0], days[0], days[1]], client_id="default")
    assert warehouse.replace_partitions_with_rows("raw_events", days, events) == {days[0]: 2, days[1]: 1}
    written = warehouse.replace_partitions(
        "user_daily_activity", days, "user_daily_activity", {"session_gap_seconds": 1800}
    )
    assert written == {days[0]: 1, days[1]: 1}
    destinations = sorted(
        q["destinationTable"]["tableId"] for q in sent_queries(fake) if q.get("destinationTable")
    )
    assert destinations == sorted(
        f"{table}${day:%Y%m%d}" for table in ("raw_events", "user_daily_activity") for day in days
    )
    activity = fake.table(DATASET, "user_daily_activity").to_pandas()
    assert sorted(zip(activity["partition_date"], activity["events"], strict=True)) == [
        (days[0], 2),
        (days[1], 1),
    ]
    with pytest.raises(ValueError, match="outside the days"):
        warehouse.replace_partitions_with_rows("raw_events", days[:1], events)
