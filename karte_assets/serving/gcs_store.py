"""Serving snapshots on Cloud Storage: ``gs://<bucket>/<prefix>/serving/<client>/...``.

The snapshot object is created with ``ifGenerationMatch=0`` (it is named by its content, so one
that exists is the same bytes); the pointer is written last, with ``ifGenerationMatch`` set to the
generation it was read at (0: it must not exist yet), so two publishers racing cannot move it
backwards: the loser re-reads and decides again.
https://cloud.google.com/storage/docs/request-preconditions
"""

from __future__ import annotations

from pathlib import Path

from google.api_core.exceptions import PreconditionFailed
from google.cloud import storage

from karte_assets.serving.snapshot import SnapshotError, SnapshotInfo, check_client, file_sha256
from karte_assets.serving.store import (
    POINTER,
    SnapshotStore,
    object_name,
    parse_pointer,
    pointer_json,
    supersedes,
)

RACES = 5  # pointer writes lost to another publisher before giving up


class GcsSnapshotStore(SnapshotStore):
    def __init__(self, bucket: storage.Bucket, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = "/".join(part for part in (prefix.strip("/"), "serving") if part)

    def _name(self, client: str, name: str) -> str:
        return f"{self.prefix}/{check_client(client)}/{name}"

    def _pointer(self, client: str) -> tuple[tuple[SnapshotInfo, object] | None, int]:
        blob = self.bucket.get_blob(self._name(client, POINTER))
        if blob is None:
            return None, 0
        data = blob.download_as_bytes(if_generation_match=blob.generation)
        return parse_pointer(data, f"gs://{self.bucket.name}/{blob.name}"), blob.generation

    def publish(self, path, info):
        try:
            self.bucket.blob(self._name(info.client, object_name(info))).upload_from_filename(
                str(path), if_generation_match=0
            )
        except PreconditionFailed:
            pass  # the same content is there already
        for _ in range(RACES):
            current, generation = self._pointer(info.client)
            if current is not None and not supersedes(info, current[0]):
                return current[0].sha256 == info.sha256
            try:
                self.bucket.blob(self._name(info.client, POINTER)).upload_from_string(
                    pointer_json(info), content_type="application/json", if_generation_match=generation
                )
                return True
            except PreconditionFailed:
                continue
        raise RuntimeError(
            f"the serving pointer of {info.client} kept changing under {RACES} publish attempts"
        )

    def latest(self, client):
        return self._pointer(client)[0]

    def local_copy(self, info, workdir):
        target = Path(workdir) / f"{info.client}-{info.sha256[:16]}.arrow"
        if not target.exists():
            partial = target.with_suffix(".partial")
            self.bucket.blob(self._name(info.client, object_name(info))).download_to_filename(str(partial))
            if file_sha256(partial) != info.sha256:
                partial.unlink()
                raise SnapshotError(
                    f"the download of {object_name(info)} does not match its sha256 {info.sha256}"
                )
            partial.rename(target)
        return target
