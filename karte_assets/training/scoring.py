"""The scoring job: ``python -m karte_assets.training.scoring`` under Dagster Pipes.

Runs where the data is, in the training image (a Vertex AI CustomJob, or a local subprocess):
reads the audience's features that the warehouse exported, one Parquet file at a time so memory
stays bounded whatever the audience, predicts with the model from the model store and writes raw
scores (``partition_date``, ``user_id``, ``loyal_score``) as Parquet files for the warehouse to
load. Ranks and tiers are computed afterwards in the warehouse (``sql/loyalty_scores.sql``).
"""

from __future__ import annotations

import datetime as dt

import lightgbm as lgb
import numpy as np
import pyarrow as pa
from dagster_pipes import PipesContext, open_dagster_pipes

from karte_assets.training.entrypoint import pipes_channels
from karte_assets.training.uris import parquet_files, read_bytes, read_parquet, write_parquet


def run(pipes: PipesContext) -> None:
    job = pipes.extras
    day = dt.date.fromisoformat(job["partition_date"])
    booster = lgb.Booster(model_str=read_bytes(job["model_uri"]).decode())
    scored = 0
    files = parquet_files(job["features_uri"])
    for number, uri in enumerate(files):
        features = read_parquet(uri).to_pandas()
        scores = booster.predict(features[booster.feature_name()]) if len(features) else np.array([])
        raw = pa.table(
            {
                "partition_date": pa.array([day] * len(features), pa.date32()),
                "user_id": pa.array(features["user_id"], pa.string()),
                "loyal_score": pa.array(scores, pa.float64()),
            }
        )
        write_parquet(f"{job['scores_uri']}part-{number:05d}.parquet", raw)
        scored += len(features)
        pipes.log.info(f"scored {scored:,} users ({number + 1} of {len(files)} files)")
    pipes.report_custom_message({"scored": scored})


def main() -> None:
    with open_dagster_pipes(**pipes_channels()) as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
