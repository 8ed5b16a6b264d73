"""Files named by a local path or a ``gs://bucket/name`` URI, read and written the same way by
Dagster and by the training entrypoint in its Vertex AI container (credentials from ADC)."""

from __future__ import annotations

from pathlib import Path

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
