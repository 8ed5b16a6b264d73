"""A Dagster Pipes client for Vertex AI CustomJobs: context and messages travel through GCS.

The job's Pipes messages (logs, metrics) and its stdout/stderr come back as message chunks in the
bucket while it trains: ``pipes.log`` lines appear in the run's event log, stdout/stderr in the
step's compute logs.

A job is named by its key (run, asset, day): its label ``karte_job_key`` lets a retried step find
the job an earlier attempt started and re-attach to it instead of paying for a second one, and the
Pipes files live under a folder of that key, so the re-attached job's messages are still read.
Polling retries transient errors; any other way out of the wait (run cancelled, deadline, an
error) cancels the job.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dagster import AssetExecutionContext, Failure, MetadataValue, PipesClient
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.pipes.client import PipesClientCompletedInvocation, PipesParams
from dagster._core.pipes.utils import open_pipes_session
from dagster_gcp.pipes import PipesGCSContextInjector, PipesGCSMessageReader
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
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
    ListCustomJobsRequest,
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
JOB_KEY_LABEL = "karte_job_key"
# get/list/cancel have no default retry in the generated client (job_service/transports/base.py
# wraps them with default_retry None): a poll loop that runs for hours must ride out these.
TRANSIENT = (
    exceptions.ServiceUnavailable,
    exceptions.DeadlineExceeded,
    exceptions.InternalServerError,
    exceptions.ResourceExhausted,
)


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


def job_key_of(run_id: str, asset: str, scope: str) -> str:
    """The key of the one job of (run, asset, scope: the day, or day/client), as a label value: the
    same for every attempt of the step, so that a retried step finds the job an earlier attempt started."""
    return hashlib.sha256(f"{run_id}/{asset}/{scope}".encode()).hexdigest()[:32]


def console_url(job_name: str) -> str:
    """The Cloud console page of ``projects/<p>/locations/<r>/customJobs/<id>``."""
    _, project, _, region, _, job_id = job_name.split("/")
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job_id}/cpu?project={project}"


class _KeyedGCSContextInjector(PipesGCSContextInjector):
    # dagster-gcp names the context file randomly; at a fixed name, a re-attached job that has not
    # started yet still finds the context the current attempt wrote.
    @contextmanager
    def inject_context(self, context):  # ty: ignore[invalid-method-override]
        blob = self.client.get_bucket(self.bucket).blob(f"{self.key_prefix}context.json")
        blob.upload_from_string(json.dumps(context))
        yield {"bucket": self.bucket, "key": blob.name}
        blob.delete()


class _KeyedGCSMessageReader(PipesGCSMessageReader):
    # dagster-gcp writes message chunks under a random top-level folder; under our fixed one, a
    # re-attached job's messages are read by the attempt that re-attached.
    def __init__(self, *, prefix: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        with super().get_params() as params:
            yield {**params, "key_prefix": f"{self.prefix}messages"}


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
        transient_timeout: float = 600.0,
    ) -> None:
        """Pipes files go under ``gs://<bucket>/<prefix>``: give each job key its own prefix."""
        self.job_client = job_client
        self.storage_client = storage_client
        self.bucket = bucket
        self.context_injector = _KeyedGCSContextInjector(
            bucket=bucket, client=storage_client, key_prefix=prefix
        )
        self.message_reader = _KeyedGCSMessageReader(
            prefix=prefix,
            bucket=bucket,
            client=storage_client,
            interval=message_interval,
            include_stdio_in_messages=True,
        )
        self.poll_interval = poll_interval
        # Backoff from one poll interval up to a minute; give up after transient_timeout seconds.
        self.retry = Retry(
            predicate=if_exception_type(*TRANSIENT),
            initial=min(poll_interval, 60.0),
            maximum=60.0,
            timeout=transient_timeout,
        )

    def run(  # ty: ignore[invalid-method-override]
        self,
        *,
        context: AssetExecutionContext,
        parent: str,
        job_key: str,
        display_name: str,
        pool: WorkerPool,
        command: list[str],
        labels: Mapping[str, str],
        extras: Mapping[str, object],
        deadline_seconds: float,
    ) -> PipesClientCompletedInvocation:
        """Runs ``command`` as the job of ``job_key`` (a label value), or re-attaches to that job if
        an earlier attempt started it and it has not ended; waits at most ``deadline_seconds``."""
        self._check_bucket_access()
        with open_pipes_session(
            context=context,
            message_reader=self.message_reader,
            context_injector=self.context_injector,
            extras=dict(extras),
        ) as session:
            job = self._running_job(parent, job_key)
            if job is not None:
                context.log.info(
                    f"re-attaching to Vertex AI job {job.name} of an earlier attempt: {console_url(job.name)}"
                )
            else:
                job = custom_job(
                    display_name,
                    pool,
                    command,
                    session.get_bootstrap_env_vars(),
                    {**labels, JOB_KEY_LABEL: job_key},
                )
                job = self.job_client.create_custom_job(parent=parent, custom_job=job)
                context.log.info(f"Vertex AI job {job.name} submitted: {console_url(job.name)}")
            try:
                job = self._wait(context, job, time.monotonic() + deadline_seconds)
            except BaseException as error:
                # Interrupted, past the deadline, or an error that retries did not cure: the job
                # would go on running (and billing) with nobody waiting for it.
                self._cancel(context, job, error)
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

    def _running_job(self, parent: str, job_key: str) -> CustomJob | None:
        """The job of ``job_key`` that is still on its way, if any. Filter syntax: ListCustomJobsRequest.filter
        (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs/list)."""
        jobs = self.job_client.list_custom_jobs(
            request=ListCustomJobsRequest(parent=parent, filter=f'labels.{JOB_KEY_LABEL}="{job_key}"'),
            retry=self.retry,
        )
        # A job being cancelled (by an earlier attempt that failed and cleaned up) is not followed.
        running = [job for job in jobs if job.state not in ENDED | {JobState.JOB_STATE_CANCELLING}]
        return running[0] if running else None

    def _cancel(self, context: AssetExecutionContext, job: CustomJob, reason: BaseException) -> None:
        why = type(reason).__name__ if isinstance(reason, DagsterExecutionInterruptedError) else repr(reason)
        context.log.warning(f"stopped waiting for Vertex AI job {job.name} ({why}): cancelling it")
        try:
            self.job_client.cancel_custom_job(name=job.name, retry=self.retry)
        except Exception as error:  # keep the original exception; say the job may still run
            context.log.error(
                f"could not cancel Vertex AI job {job.name}, it may still be running: "
                f"{type(error).__name__}: {error}; cancel it in the console: {console_url(job.name)}"
            )

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

    def _wait(self, context: AssetExecutionContext, job: CustomJob, deadline: float) -> CustomJob:
        state = None
        while job.state not in ENDED:
            if job.state != state:
                state = job.state
                context.log.info(f"Vertex AI job {job.name}: {state.name}")
            if time.monotonic() > deadline:
                raise Failure(f"Vertex AI job {job.name} did not end in time: still {job.state.name}")
            time.sleep(self.poll_interval)
            job = self.job_client.get_custom_job(name=job.name, retry=self.retry)
        context.log.info(f"Vertex AI job {job.name}: {job.state.name}")
        return job


def job_metadata(job: CustomJob) -> dict[str, object]:
    return {
        "vertex_job_id": MetadataValue.text(job.name.split("/")[-1]),
        "vertex_job": MetadataValue.url(console_url(job.name)),
    }
