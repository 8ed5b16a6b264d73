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

from karte_assets.serving.snapshot import (
    SnapshotError,
    SnapshotInfo,
    check_client,
    file_sha256,
    products_path,
)
from karte_assets.serving.store import (
    POINTER,
    SnapshotStore,
    object_name,
    parse_pointer,
    pointer_json,
    products_object_name,
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

    def _files(self, info: SnapshotInfo, path: Path) -> list[tuple[str, Path, str]]:
        """(object name, local file, sha256) of the snapshot's files, the products first."""
        files = [(object_name(info), path, info.sha256)]
        if info.products is not None:
            files.insert(0, (products_object_name(info), products_path(path), info.products.sha256))
        return files

    def publish(self, path, info):
        for name, local, _ in self._files(info, path):
            try:
                self.bucket.blob(self._name(info.client, name)).upload_from_filename(
                    str(local), if_generation_match=0
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
        for name, local, sha256 in self._files(info, target):
            if local.exists():
                continue
            partial = local.with_suffix(".partial")
            self.bucket.blob(self._name(info.client, name)).download_to_filename(str(partial))
            if file_sha256(partial) != sha256:
                partial.unlink()
                raise SnapshotError(f"the download of {name} does not match its sha256 {sha256}")
            partial.rename(local)
        return target
