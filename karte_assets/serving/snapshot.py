"""The serving snapshot: one client's scores of one day, in a file the lookup service maps into memory.

An uncompressed Arrow IPC file holding one record batch whose rows are sorted by ``key``, a 64-bit
hash of the user id: a lookup hashes the id, binary-searches ``key`` and confirms the hit against
the stored ``user_id`` (two ids may share a hash). Uncompressed Arrow maps straight into memory,
so loading is opening the file, not parsing it; 10 M users take about 40 bytes each plus their ids.

Columns: key uint64, user_id large_string, loyal_score float64, coupon_tier dictionary<int8, string>.
The schema metadata names the client, the day and the model version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

FORMAT = "karte-serving-snapshot/1"
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # CLIENTS.md
COLUMNS = ("user_id", "loyal_score", "coupon_tier")


def user_key(user_id: bytes) -> int:
    """The 64-bit sort key of a UTF-8 user id: BLAKE2b (stdlib, keyless, stable across processes)."""
    return int.from_bytes(hashlib.blake2b(user_id, digest_size=8).digest(), "little")


def utf8_keys(ids: pa.LargeStringArray) -> np.ndarray:
    """``user_key`` of every id, hashing the Arrow array's UTF-8 bytes in place (no str round trip)."""
    _, offsets, data = ids.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[ids.offset : ids.offset + len(ids) + 1].tolist()
    utf8 = memoryview(data if data is not None else b"").cast("B")
    blake2b = hashlib.blake2b
    digests = b"".join(
        [blake2b(utf8[a:b], digest_size=8).digest() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def tier_codes(tiers: pa.ChunkedArray) -> pa.DictionaryArray:
    """Tiers as int8 codes into their names (the service reads the codes as int8)."""
    encoded = tiers.combine_chunks().cast(pa.string()).dictionary_encode()
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(pa.int8()), encoded.dictionary)


def check_client(client: str) -> str:
    if not CLIENT_ID.fullmatch(client):
        raise ValueError(f"client id {client!r} is not lowercase [a-z0-9][a-z0-9_-]{{0,62}} (CLIENTS.md)")
    return client


@dataclass(frozen=True)
class SnapshotInfo:
    """What the store's pointer says about a snapshot file; ``sha256`` names its content."""

    client: str
    partition_date: dt.date
    model_version: str
    users: int
    sha256: str
    size: int


def write_snapshot(
    scores: pa.Table, path: Path, client: str, partition_date: dt.date, model_version: str
) -> SnapshotInfo:
    """Write ``scores`` (user_id, loyal_score, coupon_tier) of one client and day to ``path``."""
    check_client(client)
    missing = [name for name in COLUMNS if name not in scores.column_names]
    if missing:
        raise ValueError(f"the scores of {client} on {partition_date} lack the columns {missing}")
    ids = scores.column("user_id").combine_chunks().cast(pa.large_string())
    if ids.null_count:
        raise ValueError(f"the scores of {client} on {partition_date} have {ids.null_count} null user ids")
    keys = utf8_keys(ids)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    sorted_ids = ids.take(pa.array(order))
    for i in np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1]):
        if sorted_ids[int(i)] == sorted_ids[int(i) + 1]:
            raise ValueError(f"user {sorted_ids[int(i)]} is scored twice for {client} on {partition_date}")
    table = pa.table(
        {
            "key": sorted_keys,
            "user_id": sorted_ids,
            "loyal_score": scores.column("loyal_score").take(pa.array(order)).cast(pa.float64()),
            "coupon_tier": tier_codes(scores.column("coupon_tier").take(pa.array(order))),
        }
    ).combine_chunks()
    metadata = {
        "format": FORMAT,
        "client": client,
        "partition_date": str(partition_date),
        "model_version": model_version,
    }
    table = table.replace_schema_metadata({"karte": json.dumps(metadata)})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(len(table), 1))
    return SnapshotInfo(
        client, partition_date, model_version, len(table), file_sha256(path), path.stat().st_size
    )


def file_sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _values(array: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """The values of a null-free fixed-width column, viewed in place (``to_numpy`` imports pandas: seconds)."""
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 0:
            return np.zeros(0, dtype=dtype)
        array = array.chunk(0)
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset : array.offset + len(array)]


class SnapshotError(ValueError):
    """A snapshot file is not what its pointer says it is."""


class Snapshot:
    """A loaded snapshot: its arrays map the file, so memory is the page cache of the file."""

    def __init__(self, path: Path, expected: SnapshotInfo) -> None:
        sha256 = file_sha256(path)  # reading it whole also warms the page cache for the first lookups
        if sha256 != expected.sha256:
            raise SnapshotError(f"{path} has sha256 {sha256}, its pointer says {expected.sha256}")
        self.path = path
        self._source = pa.memory_map(str(path))
        table = ipc.open_file(self._source).read_all()
        metadata = json.loads(table.schema.metadata[b"karte"])
        stated = (
            metadata["format"],
            metadata["client"],
            metadata["partition_date"],
            metadata["model_version"],
        )
        wanted = (FORMAT, expected.client, str(expected.partition_date), expected.model_version)
        if (
            stated != wanted
            or table.num_rows != expected.users
            or table.column("key").num_chunks > 1
            or table.schema.field("coupon_tier").type != pa.dictionary(pa.int8(), pa.string())
        ):
            raise SnapshotError(
                f"{path} holds {stated} with {table.num_rows} users, its pointer says {wanted}"
            )
        self.info = expected
        self.users = table.num_rows
        self._table = table  # keeps the mapped buffers alive
        keys = _values(table.column("key"), np.uint64)
        # A directory on the keys' top bits: bucket b holds rows starts[b]:starts[b + 1], about one
        # user each, so a lookup reads a handful of values instead of binary-searching 24 levels.
        self._shift = 64 - max(int(self.users).bit_length(), 1)
        counts = np.bincount(
            (keys >> np.uint64(self._shift)).astype(np.int64), minlength=1 << (64 - self._shift)
        )
        starts = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        # memoryviews: indexing one from Python costs a fraction of indexing a numpy array.
        self._starts = memoryview(starts)
        self._keys = memoryview(keys)
        self.tier_names: list[str] = []
        if self.users:
            ids = table.column("user_id").chunk(0)
            tiers = table.column("coupon_tier").chunk(0)
            _, offsets, data = ids.buffers()
            self._offsets = memoryview(
                np.frombuffer(offsets, dtype=np.int64)[ids.offset : ids.offset + self.users + 1]
            )
            self._ids = memoryview(data).cast("B") if data is not None else memoryview(b"")
            self._scores = memoryview(_values(table.column("loyal_score"), np.float64))
            self._tiers = memoryview(_values(tiers.indices, np.int8))
            self.tier_names = tiers.dictionary.to_pylist()

    def find(self, user_id: bytes) -> tuple[float, str] | None:
        """(loyal_score, coupon_tier) of a UTF-8 user id, or None for a user the day did not score."""
        key = user_key(user_id)
        bucket = key >> self._shift
        keys, offsets = self._keys, self._offsets
        for i in range(self._starts[bucket], self._starts[bucket + 1]):
            if keys[i] == key and self._ids[offsets[i] : offsets[i + 1]] == user_id:
                return self._scores[i], self.tier_names[self._tiers[i]]
        return None
