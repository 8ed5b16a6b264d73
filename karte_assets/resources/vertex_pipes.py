"""A Dagster Pipes client for Vertex AI CustomJobs: context and messages travel through GCS.

The job's Pipes messages (logs, metrics) and its stdout/stderr come back as message chunks in the
bucket while it trains: ``pipes.log`` lines appear in the run's event log, stdout/stderr in the
step's compute logs. A Dagster run that is cancelled cancels the job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dagster import AssetExecutionContext, Failure, MetadataValue, PipesClient
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.pipes.client import PipesClientCompletedInvocation, PipesParams
from dagster._core.pipes.utils import open_pipes_session
from dagster_gcp.pipes import PipesGCSContextInjector, PipesGCSMessageReader
from google.cloud import storage
from google.cloud.aiplatform_v1 import JobServiceClient
from google.cloud.aiplatform_v1.types import (
    AcceleratorType,
    ContainerSpec,
    CustomJob,
    CustomJobSpec,
    DiskSpec,
    EnvVar,
    JobState,
    MachineSpec,
    Scheduling,
    WorkerPoolSpec,
)
from google.protobuf.duration_pb2 import Duration

from karte_assets.resources.worker_pool import WorkerPool
from karte_assets.training.gcs_access import CODE_LOCATION_PERMISSIONS, JOB_PERMISSIONS, missing_permissions

ENDED = {
    JobState.JOB_STATE_SUCCEEDED,
    JobState.JOB_STATE_FAILED,
    JobState.JOB_STATE_CANCELLED,
    JobState.JOB_STATE_EXPIRED,
    JobState.JOB_STATE_PARTIALLY_SUCCEEDED,
}


def accelerator(name: str) -> AcceleratorType:
    try:
        return AcceleratorType[name]
    except KeyError:
        known = ", ".join(a.name for a in AcceleratorType if a.name != "ACCELERATOR_TYPE_UNSPECIFIED")
        raise ValueError(
            f"accelerator_type {name!r} is not a Vertex AI accelerator; one of {known}"
        ) from None


def custom_job(
    display_name: str, pool: WorkerPool, command: list[str], env: Mapping[str, str], labels: Mapping[str, str]
) -> CustomJob:
    """The CustomJob that runs ``command`` in ``pool.image_uri`` on the machine ``pool`` asks for."""
    pool.require(
        "machine_type", "image_uri", "replica_count", "boot_disk_type", "boot_disk_size_gb", "timeout_seconds"
    )
    gpus = pool.accelerator_count or 0
    machine = MachineSpec(machine_type=pool.machine_type)
    if gpus:
        pool.require("accelerator_type")
        machine = MachineSpec(
            machine_type=pool.machine_type,
            accelerator_type=accelerator(pool.accelerator_type),
            accelerator_count=gpus,
        )
    worker = WorkerPoolSpec(
        machine_spec=machine,
        replica_count=pool.replica_count,
        disk_spec=DiskSpec(boot_disk_type=pool.boot_disk_type, boot_disk_size_gb=pool.boot_disk_size_gb),
        container_spec=ContainerSpec(
            image_uri=pool.image_uri,
            command=command,
            env=[EnvVar(name=name, value=value) for name, value in env.items()],
        ),
    )
    spec = CustomJobSpec(
        worker_pool_specs=[worker], scheduling=Scheduling(timeout=Duration(seconds=pool.timeout_seconds))
    )
    if pool.service_account:
        spec.service_account = pool.service_account
    if pool.network:
        spec.network = pool.network
    return CustomJob(display_name=display_name, job_spec=spec, labels=dict(labels))


def console_url(job_name: str) -> str:
    """The Cloud console page of ``projects/<p>/locations/<r>/customJobs/<id>``."""
    _, project, _, region, _, job_id = job_name.split("/")
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job_id}/cpu?project={project}"


class _PrefixedGCSMessageReader(PipesGCSMessageReader):
    # dagster-gcp writes message chunks at the bucket's top level; keep them under our prefix.
    def __init__(self, *, prefix: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        with super().get_params() as params:
            yield {**params, "key_prefix": f"{self.prefix}{params['key_prefix']}"}


class PipesVertexCustomJobClient(PipesClient):
    """Submits a command as a Vertex AI CustomJob under Pipes and waits for it to end."""

    def __init__(
        self,
        job_client: JobServiceClient,
        storage_client: storage.Client,
        bucket: str,
        prefix: str,
        poll_interval: float = 15.0,
        message_interval: float = 10.0,
    ) -> None:
        self.job_client = job_client
        self.storage_client = storage_client
        self.bucket = bucket
        self.context_injector = PipesGCSContextInjector(
            bucket=bucket, client=storage_client, key_prefix=prefix
        )
        self.message_reader = _PrefixedGCSMessageReader(
            prefix=prefix,
            bucket=bucket,
            client=storage_client,
            interval=message_interval,
            include_stdio_in_messages=True,
        )
        self.poll_interval = poll_interval

    def run(  # ty: ignore[invalid-method-override]
        self,
        *,
        context: AssetExecutionContext,
        parent: str,
        display_name: str,
        pool: WorkerPool,
        command: list[str],
        labels: Mapping[str, str],
        extras: Mapping[str, object],
    ) -> PipesClientCompletedInvocation:
        self._check_bucket_access()
        with open_pipes_session(
            context=context,
            message_reader=self.message_reader,
            context_injector=self.context_injector,
            extras=dict(extras),
        ) as session:
            job = custom_job(display_name, pool, command, session.get_bootstrap_env_vars(), labels)
            job = self.job_client.create_custom_job(parent=parent, custom_job=job)
            context.log.info(f"Vertex AI job {job.name} submitted: {console_url(job.name)}")
            try:
                job = self._wait(context, job)
            except DagsterExecutionInterruptedError:
                context.log.warning(f"run interrupted: cancelling Vertex AI job {job.name}")
                self.job_client.cancel_custom_job(name=job.name)
                raise
            if job.state != JobState.JOB_STATE_SUCCEEDED:
                hint = ""
                if not session.message_handler.received_opened_message:
                    hint = (
                        f" No Dagster Pipes message came back: if the job could not use gs://{self.bucket}, "
                        f"its identity ({pool.service_account or 'the Vertex AI Custom Code Service Agent'}) "
                        f"needs {', '.join(JOB_PERMISSIONS)} on it; the job's log says."
                    )
                raise Failure(
                    description=f"Vertex AI job {job.name} ended {job.state.name}: "
                    f"{job.error.message or 'no error message'}.{hint}",
                    metadata=job_metadata(job),
                )
            return PipesClientCompletedInvocation(session, metadata=job_metadata(job))

    def _check_bucket_access(self) -> None:
        # dagster-gcp's message reader swallows every error (a 403 reads as "no messages yet"), so
        # a missing permission would surface only as a job whose messages never arrive.
        missing = missing_permissions(self.storage_client, self.bucket, CODE_LOCATION_PERMISSIONS)
        if missing:
            raise Failure(
                f"the code location's identity lacks {', '.join(missing)} on gs://{self.bucket}: "
                "Dagster Pipes over GCS needs them to pass the context to the Vertex AI job and read its "
                "messages (see 'IAM per identity' in docs/google-cloud.md)"
            )

    def _wait(self, context: AssetExecutionContext, job: CustomJob) -> CustomJob:
        state = None
        while job.state not in ENDED:
            if job.state != state:
                state = job.state
                context.log.info(f"Vertex AI job {job.name}: {state.name}")
            time.sleep(self.poll_interval)
            job = self.job_client.get_custom_job(name=job.name)
        context.log.info(f"Vertex AI job {job.name}: {job.state.name}")
        return job


def job_metadata(job: CustomJob) -> dict[str, object]:
    return {
        "vertex_job_id": MetadataValue.text(job.name.split("/")[-1]),
        "vertex_job": MetadataValue.url(console_url(job.name)),
    }
