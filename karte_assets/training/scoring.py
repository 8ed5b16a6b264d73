"""The scoring job: ``python -m karte_assets.training.scoring`` under Dagster Pipes.

Runs where the data is, in the training image (a Vertex AI CustomJob, or a local subprocess):
reads the audience's features that the warehouse exported, one Parquet file at a time so memory
stays bounded whatever the audience, predicts with the model from the model store and writes raw
scores (``partition_date``, ``client_id``, ``user_id``, ``loyal_score``), each client's users by
that client's model, as Parquet files for the warehouse to
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
    boosters = {
        client_id: lgb.Booster(model_str=read_bytes(uri).decode()) for client_id, uri in job["models"].items()
    }
    scored = 0
    files = parquet_files(job["features_uri"])
    for number, uri in enumerate(files):
        features = read_parquet(uri).to_pandas()
        # Each client's users by that client's model; a row of a client without a model is an error.
        strays = set(features["client_id"]) - set(boosters)
        if strays:
            raise ValueError(f"{uri}: rows of clients {sorted(strays)} that this job has no model for")
        scores = np.zeros(len(features))
        for client_id, rows in features.groupby("client_id").groups.items():
            booster = boosters[client_id]
            scores[features.index.get_indexer(rows)] = booster.predict(
                features.loc[rows, booster.feature_name()]
            )
        raw = pa.table(
            {
                "partition_date": pa.array([day] * len(features), pa.date32()),
                "client_id": pa.array(features["client_id"], pa.string()),
                "user_id": pa.array(features["user_id"], pa.string()),
                "loyal_score": pa.array(scores, pa.float64()),
            }
        )
        write_parquet(f"{job['scores_uri']}part-{number:05d}.parquet", raw)
        scored += len(features)
        pipes.log.info(
            f"scored {scored:,} users of {len(boosters)} clients ({number + 1} of {len(files)} files)"
        )
    pipes.report_custom_message({"scored": scored})


def main() -> None:
    with open_dagster_pipes(**pipes_channels()) as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
