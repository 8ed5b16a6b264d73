"""The training job: ``python -m karte_assets.training.entrypoint`` under Dagster Pipes.

It runs unchanged as a local subprocess or inside the Vertex AI training container. Dagster passes
the job through Pipes extras (the folder of the exported training data, the model URI, parameters:
local paths or ``gs://`` URIs); the
job logs progress to the run, writes the model file and reports its metrics back as a Pipes
custom message.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # The job's own process: LightGBM imports scikit-learn where it is installed (lightgbm/compat.py,
    # for its sklearn API, which no job uses). In the project's environment that import (sklearn,
    # scipy.stats) was most of each job's start, paid again by every day's scoring process.
    sys.modules.setdefault("sklearn", None)

import lightgbm as lgb
from dagster_pipes import (
    PipesContext,
    PipesEnvVarParamsLoader,
    PipesGCSContextLoader,
    PipesGCSMessageWriter,
    open_dagster_pipes,
)
from google.cloud import storage

from karte_assets.training.data import frame_sha256, read_frame
from karte_assets.training.gcs_access import JOB_PERMISSIONS, missing_permissions
from karte_assets.training.loyalty import train_loyalty_model
from karte_assets.training.uris import write_bytes

# The order of sql/training_data.sql, which the files of an export do not keep.
TRAINING_ORDER = ("snapshot_date", "user_id")


def run(pipes: PipesContext) -> None:
    job = pipes.extras
    frame = read_frame(job["data_uri"], TRAINING_ORDER)
    # To the container's stdout too (Cloud Logging on Vertex AI), where a failed job is debugged.
    device = job["lightgbm_params"].get("device_type", "cpu")
    print(
        f"training on {len(frame):,} rows with LightGBM {lgb.__version__}, device_type {device}", flush=True
    )
    trained = train_loyalty_model(
        frame,
        horizon_days=int(job["horizon_days"]),
        params=job["lightgbm_params"],
        num_boost_round=int(job["num_boost_round"]),
        early_stopping_rounds=int(job["early_stopping_rounds"]),
        log=pipes.log.info,
    )
    write_bytes(job["model_uri"], trained.booster.model_to_string().encode())
    pipes.report_custom_message(
        {
            "metrics": trained.metrics,
            "feature_importance": trained.feature_importance,
            "validation_summary": trained.validation_summary,
            # What the tracker records of the data, so that Dagster never has to hold it.
            "training_data": {"rows": len(frame), "sha256": frame_sha256(frame)},
        }
    )


def pipes_channels() -> dict[str, object]:
    """GCS context loader and message writer when Dagster put the context in a bucket (Vertex AI);
    otherwise the defaults (a local file and the subprocess's stdio)."""
    params = PipesEnvVarParamsLoader()
    if params.is_dagster_pipes_process() and "bucket" in params.load_context_params():
        client = storage.Client()
        bucket = params.load_context_params()["bucket"]
        missing = missing_permissions(client, bucket, JOB_PERMISSIONS)
        if missing:
            # Without these Pipes cannot even read its context, and nothing reaches Dagster: say
            # why in the job's log (Cloud Logging), which the job's error points to.
            raise SystemExit(
                f"this training job's service account lacks {', '.join(missing)} on gs://{bucket}: "
                "Dagster Pipes over GCS needs them (see 'IAM per identity' in docs/google-cloud.md)"
            )
        return {
            "context_loader": PipesGCSContextLoader(client),
            "message_writer": PipesGCSMessageWriter(client),
        }
    return {}


def main() -> None:
    with open_dagster_pipes(**pipes_channels()) as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
