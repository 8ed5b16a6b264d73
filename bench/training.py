"""Inside a child process: model training time versus rows, and users scored per second.

Training runs the project's own ``train_loyalty_model`` (what the training entrypoint runs, here
in-process, without the subprocess and Parquet staging) with the default model config, on random
subsets of one day's real training data (every snapshot kept, users sampled).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

import lightgbm as lgb


def train_task(spec: dict) -> dict:
    from karte_assets.assets.training import ModelConfig
    from karte_assets.resources.warehouse import DuckDBWarehouse
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

    booster = lgb.Booster(model_file=spec["model_path"])
    features = warehouse.query("scoring_features", {"partition_date": day})
    matrix = features[booster.feature_name()]
    predict = []
    for _ in range(3):
        started = time.perf_counter()
        booster.predict(matrix)
        predict.append(time.perf_counter() - started)
    return {
        "training_rows_available": len(frame),
        "training": training,
        "scored_users": len(features),
        "predict_seconds": statistics.median(predict),
        "trees": booster.num_trees(),
        "features": len(booster.feature_name()),
    }
