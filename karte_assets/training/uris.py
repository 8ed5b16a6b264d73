"""Files named by a local path or a ``gs://bucket/name`` URI, read and written the same way by
Dagster and by the training entrypoint in its Vertex AI container (credentials from ADC)."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import storage

GS_SCHEME = "gs://"


def split_gs_uri(uri: str) -> tuple[str, str]:
    """(bucket, object name) of a ``gs://`` URI."""
    bucket, _, name = uri.removeprefix(GS_SCHEME).partition("/")
    if not uri.startswith(GS_SCHEME) or not bucket or not name:
        raise ValueError(f"{uri!r} is not a gs://bucket/object URI")
    return bucket, name


def read_bytes(uri: str, client: storage.Client | None = None) -> bytes:
    if not uri.startswith(GS_SCHEME):
        return Path(uri).read_bytes()
    bucket, name = split_gs_uri(uri)
    return (client or storage.Client()).bucket(bucket).blob(name).download_as_bytes()


def write_bytes(uri: str, data: bytes, client: storage.Client | None = None) -> None:
    if not uri.startswith(GS_SCHEME):
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    bucket, name = split_gs_uri(uri)
    (client or storage.Client()).bucket(bucket).blob(name).upload_from_string(data)


def parquet_files(prefix: str, client: storage.Client | None = None) -> list[str]:
    """The Parquet files under ``prefix`` (a local directory or a ``gs://bucket/folder/`` URI),
    sorted by name; a prefix without any is an error naming it."""
    if prefix.startswith(GS_SCHEME):
        bucket, name = split_gs_uri(prefix)
        blobs = (client or storage.Client()).list_blobs(bucket, prefix=name)
        files = sorted(f"{GS_SCHEME}{bucket}/{blob.name}" for blob in blobs if blob.name.endswith(".parquet"))
    else:
        files = sorted(str(path) for path in Path(prefix).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {prefix}")
    return files


def read_parquet(uri: str, client: storage.Client | None = None) -> pa.Table:
    """One Parquet file, local or in Cloud Storage."""
    return pq.read_table(io.BytesIO(read_bytes(uri, client)))


def write_parquet(uri: str, table: pa.Table, client: storage.Client | None = None) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(uri, buffer.getvalue(), client)
