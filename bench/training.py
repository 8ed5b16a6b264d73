"""Inside a child process: model training time versus rows, and users scored per second
(``bench.predict``: LightGBM fed several ways and compiled trees, on the day's exported audience).

Training runs the project's own ``train_loyalty_model`` (what the training entrypoint runs, here
in-process, without the subprocess and Parquet staging) with the default model config, on random
subsets of one day's real training data (every snapshot kept, users sampled).
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import time

import pyarrow.parquet as pq

from bench import predict

SCORED_USERS = 1_000_000


def train_task(spec: dict) -> dict:
    from karte_assets.assets.training import ModelConfig
    from karte_assets.resources.warehouse import EXPORT_FILE, DuckDBWarehouse
    from karte_assets.training.loyalty import train_loyalty_model

    day = dt.date.fromisoformat(spec["day"])
    warehouse = DuckDBWarehouse(path=spec["db"])
    frame = warehouse.query_arrow("training_data", {"partition_date": day}).to_pandas()
    config = ModelConfig()
    training = []
    for rows in [int(n) for n in spec["sizes"] if int(n) < len(frame)] + [len(frame)]:
        if rows == len(frame) and not spec.get("train_all", False):
            continue
        sample = frame.sample(n=rows, random_state=7).sort_values(["snapshot_date", "user_id"])
        started = time.perf_counter()
        model = train_loyalty_model(
            sample,
            horizon_days=spec["horizon_days"],
            params=config.lightgbm_params(),
            num_boost_round=config.num_boost_round,
            early_stopping_rounds=config.early_stopping_rounds,
            log=lambda message: None,
        )
        training.append(
            {
                "rows": rows,
                "seconds": time.perf_counter() - started,
                "best_iteration": model.metrics["best_iteration"],
                "validation_auc": model.metrics["validation_auc"],
            }
        )

    # The audience exported as the scoring job receives it, repeated to at least 1M users.
    with tempfile.TemporaryDirectory(prefix="karte-bench-audience-") as folder:
        warehouse.export_query(
            "scoring_features", {"first_partition_date": day, "last_partition_date": day}, f"{folder}/"
        )
        audience = f"{folder}/{EXPORT_FILE}"
        users = pq.ParquetFile(audience).metadata.num_rows
        scoring = predict.measure(
            spec["model_path"], audience, copies=max(1, math.ceil(SCORED_USERS / users))
        )
    return {
        "training_rows_available": len(frame),
        "training": training,
        "scored_users": users,
        "scoring": scoring,
    }
