"""Users scored per second: LightGBM's own predict, fed several ways, against compiled trees.

On one model and one exported audience (the Parquet file the scoring job reads), in this process:

- *previous job*: the scoring job before batches: the file into pandas, ``predict`` on the frame
  (the model's own num_threads, that of the machine it trained on);
- *LightGBM, float64 matrix*: the Arrow batches turned into one row-major float64 matrix
  (``training.scoring.feature_matrix``), ``predict`` with the threads of this machine: the job now;
- *LightGBM, float32 matrix*: the same in float32 (half the bytes; thresholds are doubles, so
  scores can differ where a value is not a float32);
- *compiled tree walker*: ``training.trees`` (numba), LightGBM's prediction reproduced step by step,
  the job's path where it implements the model; also alternated with LightGBM's predict (A B A B),
  and its start in a fresh process: numba's compile into an empty cache, then from that cache;
- *treelite + tl2cgen*: the model compiled to machine code (compile time given apart), on the
  float64 matrix; measured where installed (``uv sync --group bench``). lleaves, measured before
  (BENCHMARKS.md), is no longer: not identical, and its llvmlite pin excluded numba.

Every candidate's scores are compared with LightGBM's predict on the pandas frame: equal bit for
bit, or the largest difference.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from karte_assets.training import trees
from karte_assets.training.scoring import BATCH_ROWS, feature_matrix, predict, scores_record
from karte_assets.training.uris import ParquetSink, parquet_batches


def _timed(function: Callable[[], np.ndarray], repeats: int) -> tuple[tuple[float, float], np.ndarray]:
    """(median wall seconds, median CPU seconds of this process) and the result. On a machine shared
    with other work the wall time stretches with the load, the CPU time much less."""
    seconds, cpu, result = [], [], None
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = function()
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return (statistics.median(seconds), statistics.median(cpu)), result


def _compiled(model_path: str, threads: int, workdir: Path) -> dict[str, tuple[float, Callable]]:
    """Compiled predictors that are installed: name -> (compile seconds, predict(matrix))."""
    found: dict[str, tuple[float, Callable]] = {}
    try:
        import tl2cgen
        import treelite
    except ImportError:
        pass
    else:
        started = time.perf_counter()
        forest = treelite.frontend.load_lightgbm_model(model_path)
        library = workdir / "treelite.so"
        tl2cgen.export_lib(forest, toolchain="gcc", libpath=str(library), params={"parallel_comp": threads})
        compile_seconds = time.perf_counter() - started
        for nthread in sorted({threads, 1}, reverse=True):
            predictor = tl2cgen.Predictor(str(library), nthread=nthread)
            found[f"treelite + tl2cgen, {nthread} thread(s)"] = (
                compile_seconds,
                lambda matrix, predictor=predictor: predictor.predict(tl2cgen.DMatrix(matrix)).reshape(-1),
            )
    return found


def _walker_start(model_path: str, workdir: Path) -> dict[str, float]:
    """Seconds (wall) a fresh process takes to import the walker and predict one row: first into an
    empty numba cache (the compile), then again from that cache (every later scoring process)."""
    probe = (
        "import time; started = time.perf_counter()\n"
        "import lightgbm as lgb, numpy as np\n"
        "from karte_assets.training import trees\n"
        f"booster = lgb.Booster(model_file={model_path!r})\n"
        "imported = time.perf_counter()\n"
        "trees.predict(trees.load(booster), np.zeros((1, booster.num_feature())), 1)\n"
        "print(imported - started, time.perf_counter() - imported)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(workdir / "numba")}
    start: dict[str, float] = {}
    for name in ("compile", "cached"):
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        start[f"imports_{name}"], start[f"first_predict_{name}"] = map(float, done.stdout.split())
    return start


def _previous_job(booster: lgb.Booster, path: str, out: Path, day: dt.date) -> dict[str, float]:
    """The scoring job before batches (commit 3e3ca91), timed by stage: read the file into pandas,
    predict on the frame, build the scores table from Python lists, write it."""
    started, cpu = time.perf_counter(), time.process_time()
    features = pq.read_table(path).to_pandas()
    read = time.perf_counter()
    scores = booster.predict(features[booster.feature_name()])
    predicted = time.perf_counter()
    raw = pa.table(
        {
            "partition_date": pa.array([day] * len(features), pa.date32()),
            "user_id": pa.array(features["user_id"], pa.string()),
            "loyal_score": pa.array(scores, pa.float64()),
        }
    )
    pq.write_table(raw, out)
    done = time.perf_counter()
    return {
        "read": read - started,
        "predict": predicted - read,
        "write": done - predicted,
        "total": done - started,
        "cpu_total": time.process_time() - cpu,
    }


def _job(booster: lgb.Booster, path: str, out: Path, day: dt.date, threads: int) -> dict[str, float]:
    """The scoring job now (training/scoring.py's loop), timed by stage."""
    stages = dict.fromkeys(("read", "matrix", "predict", "write"), 0.0)
    names = booster.feature_name()
    started = clock = time.perf_counter()
    cpu = time.process_time()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[stage] += now - clock
        clock = now

    with ParquetSink(str(out)) as sink:
        for batch in parquet_batches(path, BATCH_ROWS):
            lap("read")
            matrix = feature_matrix(batch, names)
            lap("matrix")
            scores = predict(booster, matrix, threads)
            lap("predict")
            sink.write(scores_record(batch, names, scores, day))
            lap("write")
    lap("write")
    stages["total"] = time.perf_counter() - started
    stages["cpu_total"] = time.process_time() - cpu
    return stages


def measure(model_path: str, features_path: str, repeats: int = 3, copies: int = 1) -> dict:
    """Each candidate's users/s on the file's audience (repeated ``copies`` times, for a larger one)."""
    booster = lgb.Booster(model_file=model_path)
    names = booster.feature_name()
    threads = len(os.sched_getaffinity(0))
    table = pq.read_table(features_path)
    if copies > 1:
        table = pa.concat_tables([table] * copies)
    frame = table.to_pandas()
    reference = booster.predict(frame[names])
    batches = table.to_batches(max_chunksize=BATCH_ROWS)

    def matrix64() -> np.ndarray:
        return np.concatenate([feature_matrix(batch, names) for batch in batches])

    (convert, _), matrix = _timed(matrix64, repeats)
    candidates: dict[str, dict] = {}

    def add(name: str, timing: tuple[float, float], scores: np.ndarray, **extra: object) -> None:
        seconds, cpu_seconds = timing
        difference = float(np.max(np.abs(scores - reference))) if len(scores) else 0.0
        candidates[name] = {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "users_per_second": len(table) / seconds,
            "identical": bool(np.array_equal(scores, reference)),
            "max_difference": difference,
            **extra,
        }

    seconds, scores = _timed(lambda: booster.predict(table.to_pandas()[names]), repeats)
    add("previous job: pandas frame, model's threads", seconds, scores, note="includes Arrow to pandas")
    seconds, scores = _timed(lambda: booster.predict(frame[names], num_threads=threads), repeats)
    add("LightGBM, pandas frame", seconds, scores)
    seconds, scores = _timed(lambda: booster.predict(matrix, num_threads=threads), repeats)
    add("LightGBM, float64 matrix", seconds, scores, with_conversion=seconds[0] + convert)
    seconds, scores = _timed(lambda: booster.predict(matrix, num_threads=1), repeats)
    add("LightGBM, float64 matrix, 1 thread", seconds, scores)
    for rows in (16_384, BATCH_ROWS, 1_048_576):
        seconds, scores = _timed(
            lambda rows=rows: np.concatenate(
                [
                    booster.predict(matrix[i : i + rows], num_threads=threads)
                    for i in range(0, len(matrix), rows)
                ]
            ),
            repeats,
        )
        add(f"LightGBM, float64 matrix in batches of {rows:,}", seconds, scores)
    forest = trees.load(booster)
    seconds, scores = _timed(lambda: trees.predict(forest, matrix, threads), repeats)
    add("compiled tree walker (numba), float64 matrix", seconds, scores, with_conversion=seconds[0] + convert)
    seconds, scores = _timed(lambda: trees.predict(forest, matrix, 1), repeats)
    add("compiled tree walker (numba), 1 thread", seconds, scores)
    raw = trees.raw_scores(forest, matrix, threads)
    raw_identical = bool(np.array_equal(raw, booster.predict(matrix, raw_score=True, num_threads=threads)))
    alternated: dict[str, list[tuple[float, float]]] = {"LightGBM": [], "walker": []}
    for _ in range(repeats):  # A B A B: both see the same load
        alternated["LightGBM"].append(_timed(lambda: booster.predict(matrix, num_threads=threads), 1)[0])
        alternated["walker"].append(_timed(lambda: trees.predict(forest, matrix, threads), 1)[0])
    matrix32 = np.ascontiguousarray(matrix, dtype=np.float32)
    seconds, scores = _timed(lambda: booster.predict(matrix32, num_threads=threads), repeats)
    add("LightGBM, float32 matrix", seconds, scores)
    with tempfile.TemporaryDirectory(prefix="karte-predict-") as workdir:
        audience = Path(workdir) / "audience.parquet"
        pq.write_table(table, audience)  # the copies, as one exported file
        day = dt.date(2026, 1, 1)
        jobs = {
            "previous": [
                _previous_job(booster, str(audience), Path(workdir) / "p.parquet", day)
                for _ in range(repeats)
            ],
            "now": [
                _job(booster, str(audience), Path(workdir) / "n.parquet", day, threads)
                for _ in range(repeats)
            ],
        }
        walker_start = _walker_start(model_path, Path(workdir))
        for name, (compile_seconds, predict) in _compiled(model_path, threads, Path(workdir)).items():
            seconds, scores = _timed(lambda predict=predict: predict(matrix), repeats)
            add(name, seconds, scores, compile_seconds=compile_seconds)
    return {
        "users": len(table),
        "copies": copies,
        "threads": threads,
        "trees": booster.num_trees(),
        "features": len(names),
        "arrow_to_matrix_seconds": convert,
        "candidates": candidates,
        "walker_raw_scores_identical": raw_identical,
        # (wall, CPU) seconds of each round, the two alternated
        "alternated": alternated,
        "walker_start_seconds": walker_start,
        # median of each stage over the repeats
        "job_stages": {
            job: {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}
            for job, runs in jobs.items()
        },
    }


if __name__ == "__main__":
    import json
    import sys

    print(
        json.dumps(
            measure(sys.argv[1], sys.argv[2], copies=int(sys.argv[3]) if len(sys.argv) > 3 else 1), indent=1
        )
    )
