"""The scoring job: ``python -m karte_assets.training.scoring`` under Dagster Pipes.

Runs where the data is, in the training image (a Vertex AI CustomJob, or a local subprocess):
reads the audience's features that the warehouse exported in Arrow batches, so memory is one batch
whatever the audience, predicts each client's users with that client's model from the model store
and writes raw scores (``partition_date``, the audience's key columns ``client_id`` and
``user_id``, ``loyal_score``) as Parquet files for the warehouse to load, in one folder per day
(``day_folder``). One job scores every day of a backfill that the same models score, so a job
(a process, a Vertex AI CustomJob) is started per model, not per day. Ranks, deciles and tiers
are computed afterwards in the warehouse (``sql/loyalty_scores.sql``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # The job's own process: LightGBM imports scikit-learn where it is installed (lightgbm/compat.py,
    # for its sklearn API, which no job uses). In the project's environment that import (sklearn,
    # scipy.stats) was most of each job's start, paid again by every day's scoring process.
    sys.modules.setdefault("sklearn", None)

import datetime as dt
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster_pipes import PipesContext, open_dagster_pipes

from karte_assets.training import trees
from karte_assets.training.entrypoint import pipes_channels
from karte_assets.training.uris import ParquetSink, day_folder, parquet_batches, parquet_files, read_bytes

# Rows per batch: 31 float64 features make 64 MB of matrix per batch.
BATCH_ROWS = 262_144
_EPOCH = dt.date(1970, 1, 1)


def feature_matrix(batch: pa.RecordBatch, names: list[str]) -> np.ndarray:
    """The model's features of ``batch`` as one row-major float64 matrix, nulls as NaN: what
    LightGBM's predict makes of a pandas frame of these columns, without the frame."""
    matrix = np.empty((batch.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        matrix[:, j] = batch.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return matrix


def predict(booster: lgb.Booster, matrix: np.ndarray, threads: int) -> np.ndarray:
    """LightGBM's prediction of ``matrix`` with ``threads`` threads: by the compiled tree walker
    (``trees``, identical by construction and several times faster) where it implements the model,
    else by LightGBM's own predict (the model's num_threads is that of the machine it trained on,
    so the scoring machine's count is given)."""
    if not len(matrix):
        return np.empty(0)
    forest = trees.forest(booster)
    if forest is None:
        return booster.predict(matrix, num_threads=threads)
    return trees.predict(forest, matrix, threads)


def score_batch(booster: lgb.Booster, batch: pa.RecordBatch, day: dt.date, threads: int) -> pa.RecordBatch:
    """The scores of ``batch``'s users (see ``scores_record``)."""
    features = booster.feature_name()
    return scores_record(batch, features, predict(booster, feature_matrix(batch, features), threads), day)


def scores_record(
    batch: pa.RecordBatch, features: list[str], scores: np.ndarray, day: dt.date
) -> pa.RecordBatch:
    """``partition_date``, every column of ``batch`` that is not a feature (``user_id``, ...) and
    ``loyal_score``."""
    keys = [name for name in batch.schema.names if name not in features]
    days = np.full(batch.num_rows, (day - _EPOCH).days, dtype=np.int32)
    return pa.record_batch(
        [pa.array(days).cast(pa.date32()), *(batch.column(k) for k in keys), pa.array(scores, pa.float64())],
        names=["partition_date", *keys, "loyal_score"],
    )


def client_batches(batch: pa.RecordBatch) -> list[tuple[str, pa.RecordBatch]]:
    """``batch``'s rows by client: each client's users are scored by that client's model. The
    export orders rows by client, so a batch is mostly one client's, returned whole."""
    clients = pc.unique(batch.column("client_id")).to_pylist()
    if len(clients) == 1:
        return [(clients[0], batch)]
    return [(client, batch.filter(pc.equal(batch.column("client_id"), client))) for client in clients]


def day_batches(batch: pa.RecordBatch) -> list[tuple[dt.date, pa.RecordBatch]]:
    """``batch``'s rows by their ``partition_date``, without that column: each day is scored and
    written on its own. The export orders rows by day, so a batch is mostly one day's."""
    dates = batch.column("partition_date")
    rows = batch.drop_columns(["partition_date"])
    days = pc.unique(dates).to_pylist()
    if len(days) == 1:
        return [(days[0], rows)]
    return [(day, rows.filter(pc.equal(dates, pa.scalar(day, dates.type)))) for day in days]


def score_job(job: Mapping[str, Any], log: Callable[[str], None]) -> int:
    """Score the audience of ``job`` (a ``ScoringJob`` as Pipes extras) into a folder per day;
    returns the users scored, all days together."""
    days = [dt.date.fromisoformat(day) for day in job["partition_dates"]]
    boosters = {
        client_id: lgb.Booster(model_str=read_bytes(uri).decode()) for client_id, uri in job["models"].items()
    }
    threads = len(os.sched_getaffinity(0))
    scored, empty, written = 0, None, set()
    files = parquet_files(job["features_uri"])
    for number, uri in enumerate(files):
        with ExitStack() as stack:
            sinks: dict[dt.date, ParquetSink] = {}  # this file's scores of each day, in the day's folder
            for batch in parquet_batches(uri, BATCH_ROWS):
                for day, day_rows in day_batches(batch):
                    if day not in days:
                        raise ValueError(
                            f"{uri}: rows of {day}, which is not a day of this job {job['partition_dates']}"
                        )
                    if day not in sinks:
                        target = f"{day_folder(job['scores_uri'], day.isoformat())}part-{number:05d}.parquet"
                        sinks[day] = stack.enter_context(ParquetSink(target))
                    for client_id, rows in client_batches(day_rows):
                        if client_id not in boosters:
                            raise ValueError(
                                f"{uri}: rows of client {client_id!r} that this job has no model for"
                            )
                        sinks[day].write(score_batch(boosters[client_id], rows, day, threads))
                empty = batch.drop_columns(["partition_date"]).slice(0, 0)
                scored += batch.num_rows
            written |= sinks.keys()
        log(f"scored {scored:,} users of {len(boosters)} clients ({number + 1} of {len(files)} files)")
    # A day without users still gets its (empty) scores file: the warehouse loads every day.
    for day in sorted(set(days) - written):
        with ParquetSink(f"{day_folder(job['scores_uri'], day.isoformat())}part-00000.parquet") as sink:
            sink.write(score_batch(next(iter(boosters.values())), empty, day, threads))
    return scored


def run(pipes: PipesContext) -> None:
    pipes.report_custom_message({"scored": score_job(pipes.extras, pipes.log.info)})


def main() -> None:
    with open_dagster_pipes(**pipes_channels()) as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
