"""Where serving snapshots are published and found: ``serving/<client>/`` in the model store.

``serving/<client>/<day>/<sha256[:16]>.arrow`` is a snapshot file, immutable: named by its content
and written completely before anything names it; ``<sha256[:16]>.products.arrow`` beside it is its
products file (the snapshot names the products' sha256, so the name covers their content too),
written before it. ``serving/<client>/LATEST.json`` is the pointer
the lookup service follows, written last and atomically, and only ever moved forward in time: a
day older than the one it names is never published over it, so a backfill cannot turn the
service back. The same day may be published again (a re-run), naming its new file.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path

from karte_assets.serving.snapshot import ProductsInfo, SnapshotInfo, check_client, products_path

POINTER = "LATEST.json"
log = logging.getLogger(__name__)


def object_name(info: SnapshotInfo) -> str:
    """The snapshot file's name under ``serving/<client>/``."""
    return f"{info.partition_date}/{info.sha256[:16]}.arrow"


def products_object_name(info: SnapshotInfo) -> str:
    """The products file's name under ``serving/<client>/`` (of a snapshot with products)."""
    return str(products_path(Path(object_name(info))))


def pointer_json(info: SnapshotInfo) -> bytes:
    body = {**asdict(info), "partition_date": str(info.partition_date), "object": object_name(info)}
    if info.products is not None:
        body["products"] = {**asdict(info.products), "demand_date": str(info.products.demand_date)}
    body["published_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return json.dumps(body, sort_keys=True).encode()


def parse_pointer(data: bytes, where: str) -> tuple[SnapshotInfo, dt.datetime]:
    """The snapshot a pointer names and when it was published; a clear error for a malformed one."""
    try:
        body = json.loads(data)
        products = body.get("products")
        info = SnapshotInfo(
            client=check_client(body["client"]),
            partition_date=dt.date.fromisoformat(body["partition_date"]),
            model_version=str(body["model_version"]),
            users=int(body["users"]),
            sha256=str(body["sha256"]),
            size=int(body["size"]),
            products=None
            if products is None
            else ProductsInfo(
                demand_date=dt.date.fromisoformat(products["demand_date"]),
                products=int(products["products"]),
                sha256=str(products["sha256"]),
                size=int(products["size"]),
            ),
        )
        published_at = dt.datetime.fromisoformat(body["published_at"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"the snapshot pointer {where} is malformed: {error!r}") from error
    if body.get("object") != object_name(info):
        raise ValueError(
            f"the snapshot pointer {where} names {body.get('object')!r}, not {object_name(info)}"
        )
    return info, published_at


def supersedes(new: SnapshotInfo, current: SnapshotInfo | None) -> bool:
    """Whether ``new`` may replace ``current``: a later day, or the same day's re-run."""
    if current is None or new.partition_date > current.partition_date:
        return True
    return new.partition_date == current.partition_date and new.sha256 != current.sha256


class SnapshotStore(ABC):
    """Publishing (the scores asset) and following (the lookup service) of serving snapshots."""

    @abstractmethod
    def publish(self, path: Path, info: SnapshotInfo) -> bool:
        """Publish the snapshot file at ``path`` (and its products file beside it); False if the
        pointer names a later day already."""

    @abstractmethod
    def latest(self, client: str) -> tuple[SnapshotInfo, dt.datetime] | None:
        """The snapshot the client's pointer names and its publication time, or None before the first."""

    @abstractmethod
    def local_copy(self, info: SnapshotInfo, workdir: Path) -> Path:
        """A local file holding the snapshot ``info`` (downloaded into ``workdir`` if remote), its
        products file beside it (``products_path``)."""


class LocalSnapshotStore(SnapshotStore):
    """Under a directory: the file by copy + rename, the pointer by write + rename, both atomic."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "serving"

    def publish(self, path, info):
        folder = self.root / check_client(info.client)
        target = folder / object_name(info)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The products first: a snapshot file that exists has its products beside it.
        for source, copy in ((products_path(path), products_path(target)), (path, target)):
            if (source == path or info.products is not None) and not copy.exists():
                _atomic_copy(source, copy)
        # One publisher at a time per client decides whether the pointer moves.
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.latest(info.client)
            if current is not None and not supersedes(info, current[0]):
                return current[0].sha256 == info.sha256
            pointer = folder / POINTER
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".pointer-", delete=False) as temp:
                temp.write(pointer_json(info))
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp.name, pointer)
        return True

    def latest(self, client):
        pointer = self.root / check_client(client) / POINTER
        try:
            data = pointer.read_bytes()
        except FileNotFoundError:
            return None
        return parse_pointer(data, str(pointer))

    def local_copy(self, info, workdir):
        return self.root / info.client / object_name(info)


def _atomic_copy(source: Path, target: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".snapshot-", delete=False) as temp:
        with open(source, "rb") as data:
            shutil.copyfileobj(data, temp, 1 << 20)
        temp.flush()
        os.fsync(temp.fileno())
    os.replace(temp.name, target)
