"""Warehouse-side export to Parquet files and partition loads from them, on DuckDB and on BigQuery
(google-cloud-bigquery against the loopback BigQuery, whose jobs read and write the loopback GCS)."""

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from google.cloud import bigquery as bq

from karte_assets.resources.bigquery_warehouse import BigQueryWarehouse
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.training.uris import parquet_files, read_parquet, write_parquet
from karte_assets_tests.fakes.bigquery import FakeBigQuery, LoopbackBigQuery
from karte_assets_tests.fakes.gcs import emulated_gcs

PROJECT, DATASET, BUCKET = "karte-proj", "karte_test", "karte-test"
DAY = dt.date(2026, 6, 3)
ACTIVITY = pd.DataFrame(
    {
        "user_id": [f"u{i:03d}" for i in range(30)],
        "purchases": [i % 4 for i in range(30)],
    }
)

# The audience of DAY alone (scoring_features exports a range of days).
ONE_DAY = {"first_partition_date": DAY, "last_partition_date": DAY}

SCORES = pd.DataFrame(
    {"user_id": [f"u{i:03d}" for i in range(30)], "loyal_score": [i / 30 for i in range(30)]}
)


@pytest.fixture
def gcs(monkeypatch):
    with emulated_gcs(monkeypatch, BUCKET) as fake:
        yield fake


@pytest.fixture
def bigquery(googlesql, gcs):
    fake = FakeBigQuery(googlesql, gcs=gcs).start()
    fake.create_dataset(DATASET)
    yield fake
    fake.stop()


def on_bigquery(fake: FakeBigQuery) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        bigquery=LoopbackBigQuery(project=PROJECT, url=fake.url),
        dataset=DATASET,
        events_table=f"{PROJECT}.tracking.events",
    )


def read_all(prefix: str) -> pd.DataFrame:
    """The exported seed columns (BigQuery's table has every declared column, the rest null)."""
    frame = pa.concat_tables(read_parquet(uri) for uri in parquet_files(prefix)).to_pandas()
    return frame[list(ACTIVITY.columns)].sort_values("user_id", ignore_index=True)


def seed(warehouse, table: str, rows: pd.DataFrame = ACTIVITY) -> None:
    warehouse.replace_partition_with_rows(table, DAY, rows)
    warehouse.replace_partition_with_rows(table, DAY - dt.timedelta(days=1), rows.head(3))


@pytest.fixture(params=["duckdb", "bigquery"])
def engine(request, tmp_path):
    if request.param == "duckdb":
        yield DuckDBWarehouse(path=str(tmp_path / "karte.duckdb")), f"{tmp_path}/export/", None
        return
    fake = request.getfixturevalue("bigquery")
    yield on_bigquery(fake), f"gs://{BUCKET}/staging/run-1/", fake


def test_an_export_writes_the_days_rows_as_parquet_under_the_prefix(engine):
    warehouse, prefix, fake = engine
    seed(warehouse, "user_features")
    assert warehouse.export_query("scoring_features", ONE_DAY, prefix) == prefix
    pd.testing.assert_frame_equal(read_all(prefix), ACTIVITY, check_dtype=False)
    if fake is None:
        return
    # The day went in as a parameter, and the rows stayed in BigQuery and GCS: the query job wrote
    # a table, an extract job wrote the files, and the table is gone.
    (query,) = [
        r.json()["configuration"]["query"]
        for r in fake.requests
        if r.method == "POST"
        and r.path.startswith("/bigquery/")
        and r.path.endswith("/jobs")
        and "query" in r.json()["configuration"]
        and r.json()["configuration"]["labels"]["karte_query"] == "scoring_features"
    ]
    assert "@first_partition_date" in query["query"] and str(DAY) not in query["query"]
    assert query["destinationTable"]["tableId"].startswith("export_scoring_features_")
    (extract,) = [
        j["configuration"]["extract"] for j in fake.jobs.values() if "extract" in j["configuration"]
    ]
    assert extract["destinationFormat"] == "PARQUET"
    assert extract["destinationUris"] == [f"{prefix}part-*.parquet"]
    assert not fake.db.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'export_%'"
    ).fetchone()[0]
    results = [r for r in fake.requests if "/queries/" in r.path]
    assert results and all(r.query.get("maxResults") == "0" for r in results)


def test_bigquery_shards_a_wildcard_export_into_numbered_files(bigquery):
    bigquery.extract_rows_per_file = 7
    warehouse = on_bigquery(bigquery)
    seed(warehouse, "user_features")
    prefix = warehouse.export_query("scoring_features", ONE_DAY, f"gs://{BUCKET}/x/")
    assert bigquery.gcs.names(BUCKET, "x/") == [f"x/part-{n:012d}.parquet" for n in range(5)]
    pd.testing.assert_frame_equal(read_all(prefix), ACTIVITY, check_dtype=False)


def test_the_fake_extract_refuses_what_bigquery_refuses(bigquery):
    seed(on_bigquery(bigquery), "user_features")
    bigquery.max_single_file_bytes = 100
    with on_bigquery(bigquery).bigquery.get_client() as client:
        table = f"{PROJECT}.{DATASET}.user_features"
        single = client.extract_table(
            table,
            f"gs://{BUCKET}/one.parquet",
            job_config=bq.ExtractJobConfig(destination_format="PARQUET"),
        )
        with pytest.raises(Exception, match="too large to be exported to a single file"):
            single.result()
        orc = client.extract_table(
            table, f"gs://{BUCKET}/x-*.orc", job_config=bq.ExtractJobConfig(destination_format="ORC")
        )
        with pytest.raises(Exception, match="Invalid extract destination format 'ORC'"):
            orc.result()


def table_of(warehouse, fake, table: str) -> pd.DataFrame:
    if fake is not None:
        return fake.table(DATASET, table).to_pandas()
    with warehouse.connect() as connection:
        return connection.execute(f"SELECT * FROM {table}").df()  # noqa: S608 (test table)


def test_a_partition_is_replaced_from_parquet_files_and_other_days_stay(engine):
    warehouse, prefix, fake = engine
    seed(warehouse, "loyalty_raw_scores", SCORES)
    scores = pa.table({"partition_date": [DAY] * 2, "user_id": ["a", "b"], "loyal_score": [0.2, 0.9]})
    write_parquet(f"{prefix}part-0.parquet", scores.slice(0, 1))
    write_parquet(f"{prefix}part-1.parquet", scores.slice(1))
    for _ in range(2):  # a re-run replaces, never doubles
        assert warehouse.replace_partition_from_files("loyalty_raw_scores", DAY, prefix) == 2
    table = table_of(warehouse, fake, "loyalty_raw_scores")
    day = pd.to_datetime(table["partition_date"]).dt.date
    assert sorted(table[day == DAY]["user_id"]) == ["a", "b"]
    assert sorted(table[day != DAY]["user_id"]) == ["u000", "u001", "u002"]
    assert warehouse.partition_exists("loyalty_raw_scores", DAY)


def test_rows_of_another_day_are_refused(engine):
    warehouse, prefix, _ = engine
    write_parquet(f"{prefix}part-0.parquet", pa.table({"partition_date": [DAY], "user_id": ["a"]}))
    with pytest.raises(Exception, match="do not belong to"):
        warehouse.replace_partition_from_files("loyalty_raw_scores", DAY + dt.timedelta(days=1), prefix)
