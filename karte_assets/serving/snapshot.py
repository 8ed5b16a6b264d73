"""The serving snapshot: one client's scores of one day, in a file the lookup service maps into memory.

An uncompressed Arrow IPC file holding one record batch whose rows are sorted by ``key``, a 64-bit
hash of the user id (``user_key``, defined below): a lookup hashes the id, finds its rows through
a directory on the key's top bits and confirms the hit against the stored ``user_id`` (two ids may
share a key). Uncompressed Arrow maps straight into memory, so loading is one SHA-256 pass over the
mapped file and one over the keys, not parsing; 10 M users take about 40 bytes each plus their ids.

Columns: key uint64, user_id large_string, loyal_score float64, coupon_tier dictionary<int8, string>.
The schema metadata names the format (``FORMAT``; a reader refuses any other), the client, the day
and the model version."""

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

FORMAT = "karte-serving-snapshot/2"  # /2: the key function below (/1 hashed with BLAKE2b)
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # CLIENTS.md
COLUMNS = ("user_id", "loyal_score", "coupon_tier")


# The key: MurmurHash3's 64-bit finaliser folded over the id's UTF-8 bytes read as little-endian
# 64-bit words (the last one zero-padded; an empty id is one zero word), starting from the length:
#     key = len(id); for each word w: key = fmix64(key ^ w)
#     fmix64(h): h ^= h >> 33; h *= _M1; h ^= h >> 33; h *= _M2; h ^= h >> 33  (all modulo 2**64)
# It is defined here, in integer arithmetic, so the writer (numpy, vectorised over all ids) and the
# reader (one id per request) compute the same value on any machine and any library version, which
# no hash kernel of pyarrow or DuckDB promises. It is not a keyed hash: ids come from the client's
# own data, and two ids with one key only share a bucket (``find`` compares the ids).
_M1, _M2, _MASK = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, (1 << 64) - 1


def user_key(user_id: bytes) -> int:
    """The 64-bit sort key of a UTF-8 user id (the function above; fmix64 inline: once per request)."""
    key = len(user_id)
    for start in range(0, len(user_id) or 1, 8):
        key ^= int.from_bytes(user_id[start : start + 8], "little")
        key ^= key >> 33
        key = key * _M1 & _MASK
        key ^= key >> 33
        key = key * _M2 & _MASK
        key ^= key >> 33
    return key


def _fmix64_array(h: np.ndarray) -> np.ndarray:
    """fmix64 of every value (numpy's uint64 products wrap modulo 2**64, as the masks do)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(_M1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_M2)
    h ^= h >> np.uint64(33)
    return h


def utf8_keys(ids: pa.LargeStringArray) -> np.ndarray:
    """``user_key`` of every id, vectorised over the Arrow array's UTF-8 bytes (no per-id Python)."""
    _, offsets, data = ids.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[ids.offset : ids.offset + len(ids) + 1]
    starts, lengths = bounds[:-1], np.diff(bounds)
    # Every byte offset of the data read as a little-endian uint64 (a strided view, 8 zero bytes
    # appended so the last id's word stays inside): word w of id i is windows[starts[i] + 8 * w].
    utf8 = np.concatenate([np.frombuffer(data or b"", dtype=np.uint8), np.zeros(8, dtype=np.uint8)])
    windows = np.ndarray(shape=(len(utf8) - 7,), dtype="<u8", buffer=utf8, strides=(1,))
    keys = lengths.astype(np.uint64)
    for word in range(max(int(lengths.max(initial=0)) + 7, 8) // 8):
        rows = np.flatnonzero(lengths > 8 * word) if word else slice(None)
        values = windows[starts[rows] + 8 * word]
        tail = lengths[rows] - 8 * word  # bytes of this word inside the id; under 8 in the last word
        short = tail < 8
        values[short] &= (np.uint64(1) << (8 * tail[short]).astype(np.uint64)) - np.uint64(1)
        keys[rows] = _fmix64_array(keys[rows] ^ values)
    return keys


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
    order = pa.array(np.argsort(keys))  # ties (two ids, one key) need no order: ``find`` scans them
    sorted_keys = keys[order.to_numpy()]
    sorted_ids = ids.take(order)
    _refuse_repeated_ids(sorted_keys, sorted_ids, f"{client} on {partition_date}")
    table = pa.table(
        {
            "key": sorted_keys,
            "user_id": sorted_ids,
            "loyal_score": scores.column("loyal_score").take(order).cast(pa.float64()),
            # Encoded before the take: reordering int8 codes costs a fraction of reordering strings.
            "coupon_tier": tier_codes(scores.column("coupon_tier")).take(order),
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


def _refuse_repeated_ids(keys: np.ndarray, ids: pa.LargeStringArray, what: str) -> None:
    """A user scored twice has one key twice: compare the ids of every run of equal keys."""
    tied = np.flatnonzero(keys[1:] == keys[:-1])
    seen: set[str] = set()
    for i in np.union1d(tied, tied + 1).tolist():
        user = ids[i].as_py()
        if user in seen:
            raise ValueError(f"user {user} is scored twice for {what}")
        seen.add(user)


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
        self.path = path
        self._source = pa.memory_map(str(path))
        if self._source.size() != expected.size:
            raise SnapshotError(f"{path} holds {self._source.size()} bytes, its pointer says {expected.size}")
        # One pass over the mapped bytes: the SHA-256 (hashlib lets go of the GIL, so requests go
        # on) faults the pages in, and the table read below is those same verified pages, no copy.
        sha256 = hashlib.sha256(self._source.read_buffer()).hexdigest()
        if sha256 != expected.sha256:
            raise SnapshotError(f"{path} has sha256 {sha256}, its pointer says {expected.sha256}")
        table = ipc.open_file(self._source).read_all()
        metadata = json.loads((table.schema.metadata or {}).get(b"karte", b"{}"))
        if metadata.get("format") != FORMAT:
            raise SnapshotError(
                f"{path} is a snapshot in the format {metadata.get('format')!r}, this service reads "
                f"only {FORMAT!r}: publish the day again with this version of karte_assets"
            )
        stated = (metadata["client"], metadata["partition_date"], metadata["model_version"])
        wanted = (expected.client, str(expected.partition_date), expected.model_version)
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
            (keys >> np.uint64(self._shift)).view(np.int64), minlength=1 << (64 - self._shift)
        )
        starts = np.zeros(len(counts) + 1, dtype=np.int32 if self.users < 2**31 else np.int64)
        np.cumsum(counts, out=starts[1:])
        del counts
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
