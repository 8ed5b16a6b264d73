"""The GCS model store, through google-cloud-storage against a loopback Cloud Storage."""

import pyarrow as pa
import pytest
from dagster_gcp import GCSResource
from google.api_core.exceptions import NotFound

from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.training.uris import parquet_files, read_parquet, split_gs_uri, write_bytes, write_parquet
from karte_assets_tests.fakes.gcs import emulated_gcs

BUCKET = "karte-models"


@pytest.fixture
def gcs(monkeypatch):
    with emulated_gcs(monkeypatch, BUCKET) as fake:
        yield fake


@pytest.fixture
def store(gcs) -> GcsModelStore:
    return GcsModelStore(bucket=BUCKET, prefix="karte/prod/", gcs=GCSResource(project="karte-proj"))


def test_a_model_goes_from_staging_to_its_version_and_staging_is_discarded(gcs, store):
    table = pa.table({"user_id": ["a", "b"], "label": [0, 1]})
    prefix = store.staging_prefix("run-1/2026-06-15", "training_data")
    assert prefix == f"gs://{BUCKET}/karte/prod/staging/run-1/2026-06-15/training_data/"
    write_parquet(f"{prefix}part-0.parquet", table)
    assert [read_parquet(uri) for uri in parquet_files(prefix)] == [table]

    staged = store.staged_model_uri("run-1/2026-06-15")
    write_bytes(staged, b"tree\nversion=v4\n")
    published = store.publish("run-1/2026-06-15", "loyalty-20260615-abc")
    assert published == f"gs://{BUCKET}/karte/prod/versions/loyalty-20260615-abc/model.txt"
    assert store.read_model(published) == store.read_model(staged) == "tree\nversion=v4\n"

    store.discard_staging("run-1/2026-06-15")
    assert gcs.names(BUCKET) == ["karte/prod/versions/loyalty-20260615-abc/model.txt"]


def test_publishing_a_version_again_never_overwrites_it(gcs, store):
    write_bytes(store.staged_model_uri("run-1/d"), b"first")
    uri = store.publish("run-1/d", "v1")
    generation = gcs.objects[split_gs_uri(uri)][0]
    write_bytes(store.staged_model_uri("run-2/d"), b"second")
    assert store.publish("run-2/d", "v1") == uri
    assert gcs.objects[split_gs_uri(uri)] == (generation, b"first")


def test_a_missing_model_is_an_error_naming_it(store):
    with pytest.raises(NotFound, match="karte/prod/versions/nope/model.txt"):
        store.read_model(f"gs://{BUCKET}/karte/prod/versions/nope/model.txt")


@pytest.mark.parametrize("uri", ["gs://bucket-only", "gs:///name", "s3://b/n"])
def test_malformed_gs_uris_are_refused(uri):
    with pytest.raises(ValueError, match="is not a gs://bucket/object URI"):
        split_gs_uri(uri)
