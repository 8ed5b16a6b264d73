"""A job's input: the Parquet files a warehouse export wrote under a prefix, as one frame."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from karte_assets.training.uris import parquet_files, read_parquet


def read_frame(prefix: str, order_by: Sequence[str]) -> pd.DataFrame:
    """Every row of the Parquet files under ``prefix``, sorted by ``order_by``: an export splits
    rows into files in no particular order, and the same rows must give the same model."""
    table = pa.concat_tables(read_parquet(uri) for uri in parquet_files(prefix))
    return table.to_pandas().sort_values(list(order_by), kind="stable", ignore_index=True)


def frame_sha256(frame: pd.DataFrame) -> str:
    """A content hash of ``frame``'s column names and rows: the same data always hashes the same."""
    digest = hashlib.sha256("\t".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
