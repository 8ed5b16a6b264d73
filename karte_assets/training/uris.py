"""Files named by a local path or a ``gs://bucket/name`` URI, read and written the same way by
Dagster and by the training entrypoint in its Vertex AI container (credentials from ADC)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

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


def day_folder(prefix: str, day: str) -> str:
    """The folder of one day's files under ``prefix`` (a folder ending in ``/``), e.g. a scoring
    job's scores of one of its days."""
    return f"{prefix}{day}/"


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


def parquet_batches(
    uri: str, batch_rows: int, client: storage.Client | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of one Parquet file in batches of at most ``batch_rows`` (one empty batch for an
    empty file, so its schema still reaches the reader). A local file is read batch by batch; a
    Cloud Storage one is downloaded first, then decoded batch by batch."""
    source = uri if not uri.startswith(GS_SCHEME) else io.BytesIO(read_bytes(uri, client))
    with pq.ParquetFile(source) as file:
        if not file.metadata.num_rows:
            yield pa.RecordBatch.from_pylist([], schema=file.schema_arrow)
            return
        yield from file.iter_batches(batch_size=batch_rows)


class ParquetSink:
    """One Parquet file at ``uri`` written batch by batch; a local file is written as it goes, a
    Cloud Storage object uploaded when the sink closes without error."""

    def __init__(self, uri: str, client: storage.Client | None = None):
        self.uri, self.client = uri, client
        self._buffer = io.BytesIO() if uri.startswith(GS_SCHEME) else None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetSink:
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            if self._buffer is None:
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._buffer or self.uri, batch.schema)
        self._writer.write_batch(batch)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writer is not None:
            self._writer.close()
        if kind is None and self._buffer is not None:
            write_bytes(self.uri, self._buffer.getvalue(), self.client)


def write_parquet(uri: str, table: pa.Table, client: storage.Client | None = None) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(uri, buffer.getvalue(), client)
