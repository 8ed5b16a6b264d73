"""The BigQuery warehouse: google-cloud-bigquery against a loopback BigQuery that runs each job
on DuckDB, compared with the local DuckDB path on the same data."""

import datetime as dt

import pandas as pd
import pytest
import sqlglot
from dagster import AssetExecutionContext, asset, materialize
from dagster_gcp import GCSResource

from karte_assets.definitions import ASSETS
from karte_assets.partitions import daily_partitions
from karte_assets.resources.bigquery_warehouse import BigQueryWarehouse
from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.sql import SQL_DIR
from karte_assets_tests.fakes.bigquery import FakeBigQuery, LoopbackBigQuery
from karte_assets_tests.fakes.gcs import FakeGcs
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with

PROJECT, DATASET, BUCKET = "karte-proj", "karte_test", "karte-test"
TABLES = [a.key.path[-1] for a in ASSETS]
VOLATILE = {"loyalty_model": ["trained_at", "model_uri"]}


@pytest.fixture
def gcs(monkeypatch):
    service = FakeGcs((BUCKET,)).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", service.url)
    yield service
    service.stop()


@pytest.fixture
def fake(gcs):
    service = FakeBigQuery(gcs).start()
    yield service
    service.stop()


def warehouse_on(fake: FakeBigQuery, **fields) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        bigquery=LoopbackBigQuery(project=PROJECT, url=fake.url),
        dataset=DATASET,
        events_table=f"{PROJECT}.tracking.events",
        **fields,
    )


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


def test_the_graph_on_bigquery_gives_the_local_graphs_tables(fake, tmp_path):
    last = FIRST_DAY + dt.timedelta(days=14)  # the first day with a model to train
    local = LocalGraph(tmp_path / "local")
    assert local.materialize(FIRST_DAY, last).success

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

    # Every statement sent is BigQuery SQL, and every query file of the graph was sent.
    queries = sent_queries(fake)
    for query in queries:
        sqlglot.parse_one(query["query"], read="bigquery")
    used = {query["labels"]["karte_query"] for query in queries}
    assert used <= {path.stem for path in SQL_DIR.glob("*.sql")}
    assert {
        *("user_daily_activity", "user_profile", "user_features", "loyalty_training_set", "training_data"),
        *(
            "scoring_features",
            "latest_model",
            "partition_log_table",
            "partition_log_merge",
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
    fake.create(
        "tracking", "events", events.assign(event_ts=pd.to_datetime(events["event_ts"], utc=True)), "event_ts"
    )

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


DAY = dt.date(2026, 6, 3)


@asset(partitions_def=daily_partitions)
def writes(context: AssetExecutionContext, warehouse: Warehouse) -> None:
    warehouse.ensure_table("raw_events_table")
    rows = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "event_ts": pd.to_datetime(["2026-06-02 16:00", "2026-06-02 16:10", "2026-06-03 01:00"]),
            "event_name": ["view", "purchase", "view"],
            "value": [0.0, 12.5, 0.0],
            "properties": [None, None, '{"page": "top"}'],
        }
    )
    warehouse.replace_partition_with_rows("raw_events", DAY, rows)
    warehouse.replace_partition(
        "user_daily_activity", DAY, "user_daily_activity", {"session_gap_seconds": 1800}
    )


def test_a_partition_write_replaces_exactly_that_partition_through_its_decorator(fake):
    warehouse = warehouse_on(fake, maximum_bytes_billed=5 * 2**30)
    result = materialize([writes], resources={"warehouse": warehouse}, partition_key=DAY.isoformat())
    assert result.success

    (load,) = [r for r in fake.requests if r.path.startswith("/upload/")]
    assert load.query["uploadType"] == "multipart"
    body = load.body.decode("latin-1")
    assert f'"tableId": "raw_events${DAY:%Y%m%d}"' in body
    assert '"writeDisposition": "WRITE_TRUNCATE"' in body and '"sourceFormat": "PARQUET"' in body

    (write,) = [q for q in sent_queries(fake) if q.get("destinationTable")]
    assert write["destinationTable"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
        "tableId": f"user_daily_activity${DAY:%Y%m%d}",
    }
    assert write["writeDisposition"] == "WRITE_TRUNCATE"
    assert write["timePartitioning"] == {"type": "DAY", "field": "partition_date"}
    assert write["defaultDataset"] == {"projectId": PROJECT, "datasetId": DATASET}
    assert write["maximumBytesBilled"] == str(5 * 2**30)
    assert write["labels"] == {
        "karte_query": "user_daily_activity",
        "dagster_asset": "writes",
        "dagster_partition": "2026-06-03",
        "dagster_run_id": result.run_id,
    }
    parameters = {
        p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"])
        for p in write["queryParameters"]
    }
    assert parameters == {"partition_date": ("DATE", "2026-06-03"), "session_gap_seconds": ("INT64", "1800")}
    assert "2026-06-03" not in write["query"] and "@partition_date" in write["query"]

    # A re-run and a neighbouring day: the day is replaced, never doubled; other days stay.
    warehouse.replace_partition(
        "user_daily_activity",
        DAY - dt.timedelta(days=1),
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
    with pytest.raises(
        RuntimeError, match=r"\(event_counts\) failed: .*exceeded limit for bytes billed: 1000"
    ):
        warehouse.query("event_counts", {"partition_date": DAY})
