"""Scoring: the model of the last backfill day trained and used through Dagster, and LightGBM alone.

On the warehouse the single-run backfill leaves (run first if it is not there):
1. loyalty_training_set, loyalty_model and loyalty_scores for the last day, default config, in one
   Dagster run: the model trains through the trainer resource (a subprocess under Dagster Pipes).
2. In a child process: training time versus rows on subsets of that day's training data, and
   LightGBM's own prediction speed on that day's users with the model of step 1.
The model is kept as ``<work>/models/loyalty-bench.txt`` for the end-to-end day.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb

from bench import backfill, data
from bench.child import graph_environment, run_child

SELECTION = ["loyalty_training_set", "loyalty_model", "loyalty_scores"]
HORIZON_DAYS = 28  # TrainingSetConfig's default


def model_path(work: Path) -> Path:
    return work / "models" / "loyalty-bench.txt"


def _has_features(db: Path, day: dt.date) -> bool:
    if not db.exists():
        return False
    with duckdb.connect(str(db), read_only=True) as connection:
        found = connection.execute(
            "SELECT count(*) FROM partition_log WHERE table_name = 'user_features' AND partition_date = $day",
            {"day": day},
        ).fetchone()[0]
    return bool(found)


def run(
    work: Path,
    days: int,
    events_per_day: int,
    sizes: list[int],
    train_all: bool,
    log=print,
    horizon_days: int = HORIZON_DAYS,
) -> dict:
    home = backfill.home_for(work, "range")
    last = data.FIRST_DAY + dt.timedelta(days=days - 1)
    db = home / "warehouse.duckdb"
    if not _has_features(db, last):
        log("scoring needs the single-run backfill's warehouse: running the backfill first")
        backfill.run(work, days, events_per_day, ["range"], log)
    env = graph_environment(home, data.FIRST_DAY.isoformat(), data.TIMEZONE)
    log(f"scoring: training set, model and scores of {last} through Dagster ...")
    # A shorter horizon lets a shorter history (--backfill-days) train a model.
    run_config = {"ops": {"loyalty_training_set": {"config": {"horizon_days": horizon_days}}}}
    graph = run_child(
        "materialize",
        {
            "start": last.isoformat(),
            "end": last.isoformat(),
            "selection": SELECTION,
            "run_config": run_config,
        },
        env,
    )
    with duckdb.connect(str(db), read_only=True) as connection:
        model = connection.execute(
            "SELECT status, note, model_uri, train_rows, validation_rows, best_iteration, validation_auc, "
            "baseline_auc FROM loyalty_model WHERE partition_date = $day",
            {"day": last},
        ).fetchone()
        training_rows = connection.execute(
            "SELECT count(*) FROM loyalty_training_set WHERE partition_date = $day", {"day": last}
        ).fetchone()[0]
        scored = connection.execute(
            "SELECT count(*) FROM loyalty_scores WHERE partition_date = $day", {"day": last}
        ).fetchone()[0]
    keys = ["status", "note", "model_uri", "train_rows", "validation_rows", "best_iteration"]
    model = dict(zip([*keys, "validation_auc", "baseline_auc"], model, strict=True))
    if model["status"] != "trained":
        raise RuntimeError(f"no model trained for {last}: {model}")
    model_path(work).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model["model_uri"], model_path(work))

    log("scoring: training time versus rows, prediction speed ...")
    lightgbm = run_child(
        "train",
        {
            "db": str(db),
            "day": last.isoformat(),
            "sizes": sizes,
            "train_all": train_all,
            "horizon_days": horizon_days,
            "model_path": str(model_path(work)),
        },
        env,
    )
    run = graph.result["runs"][0]
    work_seconds = {asset: sum(days.values()) for asset, days in run["work"].items()}
    return {
        "day": last.isoformat(),
        "history_days": days,
        "horizon_days": horizon_days,
        "events_per_day_target": events_per_day,
        "model": model,
        "training_set_rows": training_rows,
        "scored_users": scored,
        "dagster": {
            "wall": run["wall"],
            "steps": run["steps"],
            "work": work_seconds,
            "peak_rss": graph.peak_rss_bytes,
        },
        "lightgbm": {**lightgbm.result, "peak_rss": lightgbm.peak_rss_bytes},
    }
