"""The serving snapshot: one client's scores of one day, in a file the lookup service maps into memory.

An uncompressed Arrow IPC file holding one record batch whose rows are sorted by ``key``, a 64-bit
hash of the user id (``user_key``, defined below): a lookup hashes the id, finds its rows through
a directory on the key's top bits and confirms the hit against the stored ``user_id`` (two ids may
share a key). Uncompressed Arrow maps straight into memory, so loading is one SHA-256 pass over the
mapped file and one over the keys, not parsing; 10 M users take about 40 bytes each plus their ids.

Columns: key uint64, user_id large_string, loyal_score float64, coupon_tier dictionary<int8, string>,
flagged int8 (1: the anomaly template flagged the user on ``anomaly_date``, 0: it scored the user
that day without flagging, -1: no verdict: not active that day, no anomaly day yet, or a client
without the anomaly use case). The schema metadata names the format (``FORMAT``; a reader refuses
any other), the client, the day, the model version, ``anomaly_use_case`` and ``anomaly_date``.

Beside it, when the client has a demand forecast on or before the day, a products file in the same
layout keyed by ``product_id`` (``PRODUCT_COLUMNS``), its sha256 and size named by the pointer: the
two are published, verified and swapped in together.
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

# /3: the flagged column, the anomaly metadata and the products file; /2: the key function below
# (/1 hashed with BLAKE2b).
FORMAT = "karte-serving-snapshot/3"
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # CLIENTS.md
COLUMNS = ("user_id", "loyal_score", "coupon_tier")  # and ``flagged`` (BOOL, NULL: no verdict) if known
# A product of the client's newest demand day: its forecast and the sum of its daily 95 % upper
# bounds over the horizon (demand_forecast), and, for an overstock candidate, its stock, excess and
# rank (overstock_candidates; NULL for the others).
PRODUCT_COLUMNS = (
    "product_id",
    "demand_forecast",
    "demand_hi_95",
    "horizon_days",
    "overstock",
    "stock_on_hand",
    "stock_as_of",
    "excess",
    "excess_rank",
    "model_version",
)


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
class Anomaly:
    """Where a snapshot's flags come from: whether the client has the anomaly use case, and the
    anomaly day (its newest on or before the snapshot's day; None before the first)."""

    use_case: bool
    partition_date: dt.date | None = None


NO_ANOMALY = Anomaly(use_case=False)


@dataclass(frozen=True)
class ProductsInfo:
    """The products file beside a snapshot: the demand day it holds, and its content."""

    demand_date: dt.date
    products: int
    sha256: str
    size: int


@dataclass(frozen=True)
class SnapshotInfo:
    """What the store's pointer says about a snapshot file; ``sha256`` names its content."""

    client: str
    partition_date: dt.date
    model_version: str
    users: int
    sha256: str
    size: int
    products: ProductsInfo | None = None


def products_path(path: Path) -> Path:
    """Where the products file of the snapshot file ``path`` lies (locally, in a store, in a download)."""
    return path.with_name(f"{path.stem}.products.arrow")


def write_snapshot(
    scores: pa.Table,
    path: Path,
    client: str,
    partition_date: dt.date,
    model_version: str,
    anomaly: Anomaly = NO_ANOMALY,
    products: pa.Table | None = None,
    demand_date: dt.date | None = None,
) -> SnapshotInfo:
    """Write ``scores`` (user_id, loyal_score, coupon_tier, optionally flagged) of one client and day
    to ``path``, and ``products`` (``PRODUCT_COLUMNS``, of the demand day ``demand_date``) beside it."""
    check_client(client)
    what = f"the scores of {client} on {partition_date}"
    missing = [name for name in COLUMNS if name not in scores.column_names]
    if missing:
        raise ValueError(f"{what} lack the columns {missing}")
    if anomaly.use_case and anomaly.partition_date is not None and "flagged" not in scores.column_names:
        raise ValueError(f"{what} lack the column flagged of the anomaly day {anomaly.partition_date}")
    metadata = {
        "format": FORMAT,
        "client": client,
        "partition_date": str(partition_date),
        "model_version": model_version,
        "anomaly_use_case": anomaly.use_case,
        "anomaly_date": str(anomaly.partition_date) if anomaly.partition_date else None,
        "products_sha256": None,
    }
    product_info = None
    if products is not None:
        if demand_date is None:
            raise ValueError(f"the products of {client} for {partition_date} need their demand day")
        product_info = _write_products(
            products, products_path(path), {**metadata, "demand_date": str(demand_date)}
        )
        product_info = ProductsInfo(demand_date, *product_info)
        # The snapshot names its products file by content, so its own sha256 covers both files.
        metadata["products_sha256"] = product_info.sha256
    order, keys, ids = _sorted_by_key(scores.column("user_id"), "user", what)
    flags = np.full(len(ids), -1, dtype=np.int8)  # no verdict
    if anomaly.use_case and "flagged" in scores.column_names:
        flagged = scores.column("flagged").combine_chunks().take(order)
        judged = flagged.is_valid().to_numpy(zero_copy_only=False)
        flags[judged] = flagged.fill_null(False).to_numpy(zero_copy_only=False)[judged]
    table = pa.table(
        {
            "key": keys,
            "user_id": ids,
            "loyal_score": scores.column("loyal_score").take(order).cast(pa.float64()),
            # Encoded before the take: reordering int8 codes costs a fraction of reordering strings.
            "coupon_tier": tier_codes(scores.column("coupon_tier")).take(order),
            "flagged": flags,
        }
    )
    sha256, size = _write_table(table, metadata, path)
    return SnapshotInfo(client, partition_date, model_version, len(table), sha256, size, product_info)


def _write_products(products: pa.Table, path: Path, metadata: dict) -> tuple[int, str, int]:
    what = f"the products of {metadata['client']} on {metadata['demand_date']}"
    missing = [name for name in PRODUCT_COLUMNS if name not in products.column_names]
    if missing:
        raise ValueError(f"{what} lack the columns {missing}")
    order, keys, ids = _sorted_by_key(products.column("product_id"), "product", what)
    columns = {"key": keys, "product_id": ids}
    for name in PRODUCT_COLUMNS[1:]:
        columns[name] = products.column(name).take(order)
    table = pa.table(columns)
    return len(table), *_write_table(table, metadata, path)


def _sorted_by_key(
    column: pa.ChunkedArray, noun: str, what: str
) -> tuple[pa.Array, np.ndarray, pa.LargeStringArray]:
    """The order that sorts the ids by key, the sorted keys and ids; a null or repeated id is an error."""
    ids = column.combine_chunks().cast(pa.large_string())
    if ids.null_count:
        raise ValueError(f"{what} have {ids.null_count} null {noun} ids")
    keys = utf8_keys(ids)
    order = pa.array(np.argsort(keys))  # ties (two ids, one key) need no order: a lookup scans them
    sorted_keys = keys[order.to_numpy()]
    sorted_ids = ids.take(order)
    _refuse_repeated_ids(sorted_keys, sorted_ids, noun, what)
    return order, sorted_keys, sorted_ids


def _write_table(table: pa.Table, metadata: dict, path: Path) -> tuple[str, int]:
    """Write ``table`` as one record batch with ``metadata``; its sha256 and size."""
    table = table.combine_chunks().replace_schema_metadata({"karte": json.dumps(metadata)})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(len(table), 1))
    return file_sha256(path), path.stat().st_size


def _refuse_repeated_ids(keys: np.ndarray, ids: pa.LargeStringArray, noun: str, what: str) -> None:
    """An id listed twice has one key twice: compare the ids of every run of equal keys."""
    tied = np.flatnonzero(keys[1:] == keys[:-1])
    seen: set[str] = set()
    for i in np.union1d(tied, tied + 1).tolist():
        user = ids[i].as_py()
        if user in seen:
            raise ValueError(f"{noun} {user} appears twice in {what}")
        seen.add(user)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _values(array: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """The values of a null-free fixed-width column, viewed in place (``to_numpy`` imports pandas: seconds)."""
    if len(array) == 0:
        return np.zeros(0, dtype=dtype)
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0)
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset : array.offset + len(array)]


class SnapshotError(ValueError):
    """A snapshot file is not what its pointer says it is."""


def _read_verified(source: pa.MemoryMappedFile, path: Path, size: int, sha256: str) -> tuple[pa.Table, dict]:
    """The table and metadata of a mapped file whose size and sha256 are as stated, in ``FORMAT``."""
    if source.size() != size:
        raise SnapshotError(f"{path} holds {source.size()} bytes, its pointer says {size}")
    # One pass over the mapped bytes: the SHA-256 (hashlib lets go of the GIL, so requests go
    # on) faults the pages in, and the table read below is those same verified pages, no copy.
    found = hashlib.sha256(source.read_buffer()).hexdigest()
    if found != sha256:
        raise SnapshotError(f"{path} has sha256 {found}, its pointer says {sha256}")
    table = ipc.open_file(source).read_all()
    metadata = json.loads((table.schema.metadata or {}).get(b"karte", b"{}"))
    if metadata.get("format") != FORMAT:
        raise SnapshotError(
            f"{path} is a snapshot in the format {metadata.get('format')!r}, this service reads "
            f"only {FORMAT!r}: publish the day again with this version of karte_assets"
        )
    if table.column("key").num_chunks > 1:
        raise SnapshotError(f"{path} holds more than one record batch")
    return table, metadata


class KeyIndex:
    """The rows of a table sorted by ``key`` (the key of its ``id_column``), found by id."""

    def __init__(self, table: pa.Table, id_column: str) -> None:
        rows = table.num_rows
        keys = _values(table.column("key"), np.uint64)
        # A directory on the keys' top bits: bucket b holds rows starts[b]:starts[b + 1], about one
        # id each, so a lookup reads a handful of values instead of binary-searching 24 levels.
        self._shift = 64 - max(int(rows).bit_length(), 1)
        counts = np.bincount(
            (keys >> np.uint64(self._shift)).view(np.int64), minlength=1 << (64 - self._shift)
        )
        starts = np.zeros(len(counts) + 1, dtype=np.int32 if rows < 2**31 else np.int64)
        np.cumsum(counts, out=starts[1:])
        del counts
        # memoryviews: indexing one from Python costs a fraction of indexing a numpy array.
        self._starts = memoryview(starts)
        self._keys = memoryview(keys)
        self._offsets = memoryview(np.zeros(1, dtype=np.int64))
        self._ids = memoryview(b"")
        if rows:
            ids = table.column(id_column).chunk(0)
            _, offsets, data = ids.buffers()
            self._offsets = memoryview(
                np.frombuffer(offsets, dtype=np.int64)[ids.offset : ids.offset + rows + 1]
            )
            self._ids = memoryview(data).cast("B") if data is not None else memoryview(b"")

    def row(self, id_bytes: bytes) -> int | None:
        """The row of a UTF-8 id, or None."""
        key = user_key(id_bytes)
        bucket = key >> self._shift
        keys, offsets = self._keys, self._offsets
        for i in range(self._starts[bucket], self._starts[bucket + 1]):
            if keys[i] == key and self._ids[offsets[i] : offsets[i + 1]] == id_bytes:
                return i
        return None


class Products:
    """A loaded products file: one client's products of its demand day, found by product id."""

    def __init__(self, path: Path, info: ProductsInfo, stated: dict) -> None:
        self._source = pa.memory_map(str(path))
        table, metadata = _read_verified(self._source, path, info.size, info.sha256)
        expected = {**stated, "demand_date": str(info.demand_date)}
        if {k: metadata.get(k) for k in expected} != expected or table.num_rows != info.products:
            raise SnapshotError(
                f"{path} holds {metadata} with {table.num_rows} products, its pointer says {expected}"
            )
        self.info = info
        self._table = table
        self._index = KeyIndex(table, "product_id")

    def find(self, product_id: bytes) -> dict[str, object] | None:
        """The product's row (``PRODUCT_COLUMNS`` but the id), or None for a product without a forecast."""
        row = self._index.row(product_id)
        if row is None:
            return None
        return {name: self._table.column(name)[row].as_py() for name in PRODUCT_COLUMNS[1:]}


class Snapshot:
    """A loaded snapshot: its arrays map the file, so memory is the page cache of the file."""

    def __init__(self, path: Path, expected: SnapshotInfo) -> None:
        self.path = path
        self._source = pa.memory_map(str(path))
        table, metadata = _read_verified(self._source, path, expected.size, expected.sha256)
        stated = (metadata["client"], metadata["partition_date"], metadata["model_version"])
        wanted = (expected.client, str(expected.partition_date), expected.model_version)
        products_sha256 = expected.products.sha256 if expected.products else None
        if (
            stated != wanted
            or table.num_rows != expected.users
            or metadata.get("products_sha256") != products_sha256
            or table.schema.field("coupon_tier").type != pa.dictionary(pa.int8(), pa.string())
            or table.schema.field("flagged").type != pa.int8()
        ):
            raise SnapshotError(
                f"{path} holds {stated} with {table.num_rows} users and products {metadata.get('products_sha256')}, "
                f"its pointer says {wanted} with {expected.users} and {products_sha256}"
            )
        self.info = expected
        self.users = table.num_rows
        self.anomaly = Anomaly(
            bool(metadata["anomaly_use_case"]),
            dt.date.fromisoformat(metadata["anomaly_date"]) if metadata["anomaly_date"] else None,
        )
        self._table = table  # keeps the mapped buffers alive
        self._index = KeyIndex(table, "user_id")
        tiers = table.column("coupon_tier").chunk(0) if self.users else None
        self._scores = memoryview(_values(table.column("loyal_score"), np.float64))
        self._flags = memoryview(_values(table.column("flagged"), np.int8))
        self._tiers = memoryview(_values(tiers.indices, np.int8)) if tiers is not None else memoryview(b"")
        self.tier_names: list[str] = tiers.dictionary.to_pylist() if tiers is not None else []
        self.products = (
            Products(
                products_path(path), expected.products, {k: metadata[k] for k in ("client", "partition_date")}
            )
            if expected.products
            else None
        )

    def find(self, user_id: bytes) -> tuple[float, str, int] | None:
        """(loyal_score, coupon_tier, flagged: 1, 0 or -1 for no verdict) of a UTF-8 user id, or None
        for a user the day did not score."""
        i = self._index.row(user_id)
        if i is None:
            return None
        return self._scores[i], self.tier_names[self._tiers[i]], self._flags[i]
