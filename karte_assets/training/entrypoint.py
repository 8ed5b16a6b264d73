"""The training job: ``python -m karte_assets.training.entrypoint`` under Dagster Pipes.

It runs unchanged as a local subprocess or inside a training container. Dagster passes the job
through Pipes extras (data URI, model URI, parameters); the job logs progress to the run, writes the
model file and reports its metrics back as a Pipes custom message.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster_pipes import PipesContext, open_dagster_pipes

from karte_assets.training.loyalty import train_loyalty_model


def run(pipes: PipesContext) -> None:
    job = pipes.extras
    frame = pd.read_parquet(job["data_uri"])
    trained = train_loyalty_model(
        frame,
        horizon_days=int(job["horizon_days"]),
        params=job["lightgbm_params"],
        num_boost_round=int(job["num_boost_round"]),
        early_stopping_rounds=int(job["early_stopping_rounds"]),
        log=pipes.log.info,
    )
    model_path = Path(job["model_uri"])
    model_path.parent.mkdir(parents=True, exist_ok=True)
    trained.booster.save_model(str(model_path))
    pipes.report_custom_message(
        {"metrics": trained.metrics, "feature_importance": trained.feature_importance}
    )


def main() -> None:
    with open_dagster_pipes() as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
