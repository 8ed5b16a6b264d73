"""The trainer on Google Cloud: the training and scoring entrypoints as Vertex AI CustomJobs under Pipes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from dagster import AssetExecutionContext, Failure
from dagster_gcp import GCSResource
from google.cloud.aiplatform_v1 import JobServiceClient
from pydantic import Field

from karte_assets.resources.gcp_labels import label
from karte_assets.resources.trainer import (
    ENTRYPOINT_MODULE,
    SCORING_MODULE,
    Trainer,
    outcome_from_messages,
    scored_from_messages,
)
from karte_assets.resources.vertex_pipes import PipesVertexCustomJobClient, job_key_of
from karte_assets.resources.worker_pool import WORKER_POOL_TAG, WorkerPool

# CPU by default; a GPU run sets accelerator_type and accelerator_count (docs/google-cloud.md).
DEFAULT_POOL = WorkerPool(
    machine_type="n1-standard-8",
    accelerator_count=0,
    replica_count=1,
    boot_disk_type="pd-ssd",
    boot_disk_size_gb=100,
    timeout_seconds=3 * 3600,
)
# Scoring: LightGBM prediction on CPUs, one exported file (at most 1 GB) in memory at a time.
SCORING_POOL = WorkerPool(
    machine_type="n2-highmem-8", accelerator_type=None, accelerator_count=0, timeout_seconds=2 * 3600
)


class VertexTrainer(Trainer):
    """Runs each training job as a Vertex AI CustomJob in the training image, on the machine of its
    worker pool, with LightGBM's GPU learner when the pool has accelerators."""

    project: str = Field(description="Project the jobs run in (KARTE_GCP_PROJECT).")
    region: str = Field(description="Vertex AI region (KARTE_GCP_REGION).")
    bucket: str = Field(description="Bucket for the Pipes context and messages (KARTE_GCS_BUCKET).")
    prefix: str = Field(description="Folder in the bucket; Pipes files go under <prefix>/pipes/.")
    worker_pool: WorkerPool = Field(
        default=DEFAULT_POOL,
        description="Default worker pool of training jobs; a client's worker_pool and the run tag "
        "karte/worker_pool override single fields.",
    )
    client_worker_pools: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Client id -> worker pool fields its training jobs override (the worker_pool "
        "attribute of its defs.yaml).",
    )
    scoring_worker_pool: WorkerPool = Field(
        default=SCORING_POOL, description="Overrides of worker_pool for scoring jobs (no GPU by default)."
    )
    poll_interval_seconds: float = Field(default=15.0, gt=0, description="Seconds between job state checks.")
    message_interval_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between reads of messages."
    )
    max_wait_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Most seconds a step waits for its job before it cancels the job and fails; by "
        "default the pool's timeout_seconds plus an hour for queueing and provisioning.",
    )
    gcs: GCSResource = Field(description="Cloud Storage client for the Pipes files; credentials from ADC.")

    def job_client(self) -> JobServiceClient:
        """The JobService client of the region's endpoint; credentials from ADC."""
        return JobServiceClient(client_options={"api_endpoint": f"{self.region}-aiplatform.googleapis.com"})

    def train(self, context, job):
        pool = self.training_pool(job.client_id, context.run.tags)
        # The device follows the machine: LightGBM's GPU learner where the pool has accelerators,
        # the CPU one elsewhere, so that no job trains on CPU beside an idle, billed GPU or asks for
        # a GPU that is not there (CPU by default: reproducible versions, docs/google-cloud.md).
        device = "gpu" if pool.accelerator_count else "cpu"
        job = replace(job, lightgbm_params={**job.lightgbm_params, "device_type": device})
        return outcome_from_messages(
            self._run_module(
                context, [job.partition_date], ENTRYPOINT_MODULE, pool, asdict(job), client_id=job.client_id
            )
        )

    def training_pool(self, client_id: str, tags: Mapping[str, str]) -> WorkerPool:
        """``worker_pool``, then the client's fields (its defs.yaml ``worker_pool``), then the run's
        (tag ``karte/worker_pool``)."""
        pool = self.worker_pool.with_overrides(self.client_worker_pools.get(client_id, {}))
        if WORKER_POOL_TAG not in tags:
            return pool
        # A run tag, not run config: Dagster's run config for a resource replaces every value the
        # code location configured it with (project, bucket, image, ...), and the loyalty_model
        # asset's config is seen by every trainer, the local one included. The tag is read here
        # alone, shows on the run's page, and is checked before any job starts.
        text = tags[WORKER_POOL_TAG]
        try:
            overrides = json.loads(text)
            if not isinstance(overrides, dict):
                raise ValueError("not a JSON object")
            return pool.with_overrides(overrides)
        except ValueError as error:
            raise Failure(
                f"run tag {WORKER_POOL_TAG} {text!r}: {error}; it takes a JSON object of worker pool "
                'fields, e.g. {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", '
                '"accelerator_count": 1}'
            ) from error

    def score(self, context, job):
        # Prediction needs no GPU: the scoring machine, in the training pool's image and network.
        pool = self.worker_pool.with_overrides(self.scoring_worker_pool.overrides())
        return scored_from_messages(
            self._run_module(context, job.partition_dates, SCORING_MODULE, pool, asdict(job))
        )

    def _run_module(
        self,
        context: AssetExecutionContext,
        partition_dates: Sequence[str],
        module: str,
        pool: WorkerPool,
        extras: dict,
        client_id: str | None = None,
    ) -> list:
        """Run ``python -m module`` as a CustomJob under Pipes; the custom messages it reported.

        One job per (run, asset, days), and per client when it is one client's job: a retried step
        finds its running job by that key and re-attaches to it instead of starting a second one.
        A job of several days (scoring) is named by its first and last day.
        """
        asset = context.asset_key.to_python_identifier()
        run_id = context.run.run_id
        day = "_".join(dict.fromkeys([partition_dates[0], partition_dates[-1]]))
        # A client's model is its own job, under its own key and Pipes folder: with one per day, the
        # second client's job would read the first one's messages left in the folder, and a retried
        # step would re-attach one client's training to another's running job.
        scope = f"{day}/{client_id}" if client_id else day
        job_key = job_key_of(run_id, asset, scope)
        client = PipesVertexCustomJobClient(
            job_client=self.job_client(),
            storage_client=self.gcs.get_client(),
            bucket=self.bucket,
            prefix=f"{self.prefix.strip('/')}/pipes/{run_id}/{asset}/{scope}/",
            poll_interval=self.poll_interval_seconds,
            message_interval=self.message_interval_seconds,
        )
        invocation = client.run(
            context=context,
            parent=f"projects/{self.project}/locations/{self.region}",
            job_key=job_key,
            display_name=f"{asset}-{day}-{job_key[:8]}",
            pool=pool,
            command=["python", "-m", module],
            labels={
                "dagster_asset": label(asset),
                "dagster_partition": label(day),
                "dagster_run_id": label(context.run.run_id),
            },
            extras=extras,
            deadline_seconds=self.max_wait_seconds or pool.timeout_seconds + 3600,
        )
        for partition_date in partition_dates:
            context.add_asset_metadata(
                {**invocation.metadata, "worker_pool": pool.overrides()}, partition_key=partition_date
            )
        return list(invocation.get_custom_messages())
