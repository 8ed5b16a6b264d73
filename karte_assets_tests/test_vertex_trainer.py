"""The Vertex AI trainer: the official aiplatform client against a loopback JobService, Pipes
context and messages through a loopback GCS."""

import base64
import dataclasses
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib

import dagster._core.pipes.utils
import grpc
import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetExecutionContext,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    asset,
)
from dagster_gcp import GCSResource
from google.api_core.exceptions import Forbidden, InvalidArgument
from google.cloud import storage
from google.cloud.aiplatform_v1.types import ListCustomJobsRequest

from karte_assets.partitions import daily_partitions
from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.resources.trainer import Trainer, TrainingJob
from karte_assets.resources.vertex_trainer import DEFAULT_POOL, WORKER_POOL_TAG, VertexTrainer
from karte_assets_tests.fakes.gcs import FakeGcs
from karte_assets_tests.fakes.vertex import FakeJobService, S
from karte_assets_tests.graph import FIRST_DAY, LocalGraph

BUCKET = "karte-test"
PARENT = "projects/karte-proj/locations/asia-northeast1"


class LoopbackVertexTrainer(VertexTrainer):
    """The production trainer with its JobService client pointed at the fake."""

    fake_address: str

    def job_client(self):
        return FakeJobService.client_for(self.fake_address)


CODE_SA = "karte-code@karte-proj.iam.gserviceaccount.com"
TRAINER_SA = "karte-trainer@karte-proj.iam.gserviceaccount.com"
# The bucket roles of each identity, as docs/google-cloud.md ("IAM per identity") documents them.
DOCUMENTED_ROLES = ["roles/storage.objectUser", "roles/storage.legacyBucketReader"]
DOCUMENTED = {BUCKET: {CODE_SA: DOCUMENTED_ROLES, TRAINER_SA: DOCUMENTED_ROLES}}


@pytest.fixture
def gcs(monkeypatch, request):
    """The fake bucket; this process (the code location) calls it as CODE_SA."""
    fake = FakeGcs((BUCKET,), grants=getattr(request, "param", DOCUMENTED)).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.endpoint_for(CODE_SA))
    yield fake
    fake.stop()


IMAGE = "asia-docker.pkg.dev/karte-proj/karte/training:abc"


def trainer_for(
    fake: FakeJobService,
    max_wait_seconds: float | None = None,
    client_worker_pools: dict | None = None,
    **pool: object,
):
    return LoopbackVertexTrainer(
        fake_address=fake.address,
        max_wait_seconds=max_wait_seconds,
        project="karte-proj",
        region="asia-northeast1",
        bucket=BUCKET,
        prefix="karte/test",
        worker_pool=DEFAULT_POOL.with_overrides({"image_uri": IMAGE, **pool}),
        client_worker_pools=client_worker_pools or {},
        poll_interval_seconds=0.05,
        message_interval_seconds=0.2,
        gcs=GCSResource(project="karte-proj"),
    )


JOB = TrainingJob(
    partition_date="2026-06-15",
    client_id="shop-a",
    data_uri=f"gs://{BUCKET}/data.parquet",
    model_uri=f"gs://{BUCKET}/model.txt",
    horizon_days=7,
    lightgbm_params={"num_leaves": 7},
    num_boost_round=5,
    early_stopping_rounds=2,
)
# shop-a's worker_pool attribute (its defs.yaml): two GPUs.
GPU_POOL = {"machine_type": "g2-standard-24", "accelerator_type": "NVIDIA_L4", "accelerator_count": 2}


def training_asset(job: TrainingJob):
    @asset(name="trained", partitions_def=daily_partitions)
    def trained(context: AssetExecutionContext, trainer: Trainer) -> MaterializeResult:
        outcome = trainer.train(context, job)
        return MaterializeResult(metadata={"validation_auc": outcome.metrics["validation_auc"]})

    return trained


def run_trained(trainer, instance=None, job=JOB, run_id=None, tags=None):
    definitions = Definitions(assets=[training_asset(job)], resources={"trainer": trainer})
    return definitions.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=job.partition_date,
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_id=run_id,
        tags=tags,
    )


def failure_message(result) -> str:
    """The step failures' messages, with their causes."""
    messages = []
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return "\n".join(messages)


@pytest.fixture
def no_grace_period(monkeypatch):
    # A scripted job writes no Pipes messages; Dagster waits 10 s for them after the job ends.
    monkeypatch.setattr(dagster._core.pipes.utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)


@pytest.fixture
def vertex(request):
    fake = FakeJobService(**getattr(request, "param", {})).start()
    yield fake
    fake.stop()


def sent_extras(gcs: FakeGcs, pool) -> dict:
    """The Pipes extras of the job of worker pool spec ``pool``: its bootstrap points at the context."""
    env = {variable.name: variable.value for variable in pool.container_spec.env}
    context_params = json.loads(zlib.decompress(base64.b64decode(env["DAGSTER_PIPES_CONTEXT"])))
    assert context_params["bucket"] == BUCKET and context_params["key"].startswith("karte/test/pipes/")
    (context_json,) = [data for name, data in gcs.written if name == context_params["key"]]
    return json.loads(context_json)["extras"]


def test_the_job_runs_on_its_clients_worker_pool_with_the_gpu_learner_it_has(gcs, vertex, no_grace_period):
    result = run_trained(
        trainer_for(
            vertex,
            client_worker_pools={"shop-a": GPU_POOL, "shop-b": {"machine_type": "n1-highmem-4"}},
            service_account="trainer@karte-proj.iam.gserviceaccount.com",
            network="projects/123/global/networks/karte",
        )
    )

    (request,) = vertex.calls("CreateCustomJob")
    assert request.parent == PARENT
    spec = request.custom_job.job_spec
    (pool,) = spec.worker_pool_specs
    assert pool.machine_spec.machine_type == "g2-standard-24"  # the client's overrides...
    assert pool.machine_spec.accelerator_type.name == "NVIDIA_L4"
    assert pool.machine_spec.accelerator_count == 2
    assert pool.replica_count == 1  # ... over the resource's defaults
    assert (pool.disk_spec.boot_disk_type, pool.disk_spec.boot_disk_size_gb) == ("pd-ssd", 100)
    assert pool.container_spec.image_uri == IMAGE
    assert list(pool.container_spec.command) == ["python", "-m", "karte_assets.training.entrypoint"]
    assert spec.service_account == "trainer@karte-proj.iam.gserviceaccount.com"
    assert spec.network == "projects/123/global/networks/karte"
    assert spec.scheduling.timeout.total_seconds() == 3 * 3600
    assert request.custom_job.labels["dagster_partition"] == "2026-06-15"
    assert request.custom_job.labels["dagster_asset"] == "trained"
    # The Pipes bootstrap travels in the container's environment; the pool's GPUs choose the learner.
    extras = sent_extras(gcs, pool)
    assert (extras["client_id"], extras["lightgbm_params"]) == (
        "shop-a",
        {"num_leaves": 7, "device_type": "gpu"},
    )
    # Polled through PENDING and RUNNING to SUCCEEDED; a job that reports no metrics fails the asset.
    assert len(vertex.calls("GetCustomJob")) == 2
    assert "finished without reporting its metrics" in failure_message(result)


@pytest.mark.parametrize(
    "vertex",
    [
        {
            "states": (S.JOB_STATE_PENDING, S.JOB_STATE_RUNNING, S.JOB_STATE_FAILED),
            "error": "Quota exceeded for NVIDIA_L4 in asia-northeast1",
        }
    ],
    indirect=True,
)
def test_a_failed_job_fails_the_asset_with_the_jobs_error(gcs, vertex, no_grace_period):
    result = run_trained(trainer_for(vertex))
    assert not result.success
    message = failure_message(result)
    assert "Quota exceeded for NVIDIA_L4 in asia-northeast1" in message
    assert f"{PARENT}/customJobs/1000 ended JOB_STATE_FAILED" in message


@pytest.mark.parametrize("vertex", [{"states": (S.JOB_STATE_PENDING, S.JOB_STATE_CANCELLED)}], indirect=True)
def test_a_job_cancelled_on_vertex_fails_the_asset(gcs, vertex, no_grace_period):
    result = run_trained(trainer_for(vertex))
    assert "ended JOB_STATE_CANCELLED" in failure_message(result)


@pytest.mark.parametrize("vertex", [{"states": (S.JOB_STATE_PENDING, S.JOB_STATE_RUNNING)}], indirect=True)
def test_cancelling_the_dagster_run_cancels_the_job(gcs, vertex, no_grace_period):
    def interrupt_once_running():
        deadline = time.monotonic() + 30
        while len(vertex.calls("GetCustomJob")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        # What Dagster's run termination delivers to the process running the step.
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_once_running)
    thread.start()
    result = run_trained(trainer_for(vertex))
    thread.join()
    assert not result.success
    (cancel,) = vertex.calls("CancelCustomJob")
    assert cancel.name == f"{PARENT}/customJobs/1000"
    assert vertex.jobs[cancel.name].state == S.JOB_STATE_CANCELLING


@pytest.mark.slow
def test_the_graph_trains_on_vertex_and_scores_with_the_model_from_gcs(gcs, tmp_path, capfd):
    # The job runs as TRAINER_SA, the code location as CODE_SA: each with only its documented roles.
    vertex = FakeJobService(run_commands=True, env=dict(os.environ), gcs=gcs).start()
    try:
        graph = LocalGraph(tmp_path / "karte")
        graph.resources.update(
            # The default client's worker_pool: a bigger-memory CPU machine than the default.
            trainer=trainer_for(
                vertex,
                client_worker_pools={"default": {"machine_type": "n1-highmem-4", "accelerator_count": 0}},
                service_account=TRAINER_SA,
            ),
            model_store=GcsModelStore(
                bucket=BUCKET, prefix="karte/test", gcs=GCSResource(project="karte-proj")
            ),
        )
        last = FIRST_DAY + dt.timedelta(days=14)
        result = graph.materialize(FIRST_DAY, last)
    finally:
        vertex.stop()
    assert result.success

    # One training job, then one scoring job for the day the model scores, in the same image.
    training, scoring = vertex.calls("CreateCustomJob")
    machine = training.custom_job.job_spec.worker_pool_specs[0].machine_spec
    assert (machine.machine_type, machine.accelerator_count) == ("n1-highmem-4", 0)
    (pool,) = scoring.custom_job.job_spec.worker_pool_specs
    assert list(pool.container_spec.command) == ["python", "-m", "karte_assets.training.scoring"]
    assert (pool.machine_spec.machine_type, pool.machine_spec.accelerator_count) == ("n2-highmem-8", 0)
    assert pool.container_spec.image_uri == IMAGE
    # Metrics came back as Pipes messages through the bucket, into the model registry and metadata.
    model = graph.table("loyalty_model", last)
    (version,) = model["model_version"]
    assert model["validation_auc"].iloc[0] > 0.5
    assert model["model_uri"].iloc[0] == f"gs://{BUCKET}/karte/test/versions/{version}/model.txt"
    assert gcs.text(model["model_uri"].iloc[0]).startswith("tree\n")
    assert not gcs.names(BUCKET, "karte/test/staging/"), "staging is discarded after publishing and scoring"
    materialization = result.asset_materializations_for_node("loyalty_model")[-1]
    assert materialization.metadata["vertex_job_id"].value == "1000"
    assert (
        "console.cloud.google.com/vertex-ai/locations/asia-northeast1/training/1000"
        in materialization.metadata["vertex_job"].value
    )
    # pipes.log lines reached the event log, the job's stdout the step's stdout.
    logs = [
        event.message
        for event in graph.instance.all_logs(result.run_id, of_type=DagsterEventType.LOGS_CAPTURED)
    ] + [entry.user_message for entry in graph.instance.all_logs(result.run_id)]
    assert any("validation AUC" in (message or "") for message in logs)
    assert "device_type cpu" in capfd.readouterr().out
    # The scores of the day name the model, which the model store holds.
    # ... and the scoring job's raw scores, loaded back, are the day's scores, one per user.
    scores = graph.table("loyalty_scores", last)
    assert set(scores["model_version"]) == {version}
    raw = graph.table("loyalty_raw_scores", last)
    assert len(scores) == len(raw) == len(graph.table("user_features", last)) > 0
    assert sorted(scores["loyal_score"]) == sorted(raw["loyal_score"])


def test_the_fake_bucket_refuses_storage_object_admin_a_bucket_get_as_gcs_does(gcs):
    fake = FakeGcs((BUCKET,), grants={BUCKET: {CODE_SA: ["roles/storage.objectAdmin"]}}).start()
    try:
        client = storage.Client(client_options={"api_endpoint": fake.endpoint_for(CODE_SA)})
        client.bucket(BUCKET).blob("a").upload_from_string(b"objects are fine")
        with pytest.raises(Forbidden, match=f"{CODE_SA} does not have storage.buckets.get access"):
            client.get_bucket(BUCKET)
    finally:
        fake.stop()


@pytest.mark.parametrize("gcs", [{BUCKET: {CODE_SA: ["roles/storage.objectAdmin"]}}], indirect=True)
def test_a_code_location_without_storage_buckets_get_fails_before_starting_a_job(gcs, vertex):
    # The roles the docs used to give the code location: Storage Object Admin only.
    result = run_trained(trainer_for(vertex, service_account=TRAINER_SA))
    assert not result.success
    assert (
        f"the code location's identity lacks storage.buckets.get on gs://{BUCKET}: Dagster Pipes over GCS"
        in failure_message(result)
    )
    assert not vertex.calls("CreateCustomJob"), "no job is started that could not talk back"


@pytest.mark.parametrize("gcs", [{BUCKET: {CODE_SA: DOCUMENTED_ROLES}}], indirect=True)
def test_a_training_job_identity_without_bucket_access_fails_naming_it(gcs, no_grace_period):
    # The training job's service account had no storage role at all in the old docs.
    vertex = FakeJobService(run_commands=True, env=dict(os.environ), gcs=gcs).start()
    try:
        result = run_trained(trainer_for(vertex, service_account=TRAINER_SA))
    finally:
        vertex.stop()
    assert not result.success
    message = failure_message(result)
    assert "ended JOB_STATE_FAILED" in message
    assert (
        f"its identity ({TRAINER_SA}) needs storage.buckets.get, storage.objects.get, "
        "storage.objects.create on it" in message
    )
    (output,) = vertex.output.values()
    assert (
        "this training job's service account lacks storage.buckets.get, storage.objects.get, "
        f"storage.objects.create on gs://{BUCKET}" in output
    )


@pytest.mark.parametrize(
    "vertex",
    [{"faults": {"GetCustomJob": {2: grpc.StatusCode.UNAVAILABLE}}}],
    indirect=True,
)
def test_a_transient_unavailable_mid_poll_does_not_fail_the_step(gcs, vertex, no_grace_period):
    result = run_trained(trainer_for(vertex))
    # The poll after the UNAVAILABLE one saw the job through to SUCCEEDED; what fails the asset is
    # only that a scripted job reports no metrics.
    assert len(vertex.calls("GetCustomJob")) == 3
    assert vertex.jobs[f"{PARENT}/customJobs/1000"].state == S.JOB_STATE_SUCCEEDED
    assert "finished without reporting its metrics" in failure_message(result)
    assert "UNAVAILABLE" not in failure_message(result)
    assert not vertex.calls("CancelCustomJob")


@pytest.mark.parametrize(
    ("vertex", "max_wait_seconds", "error"),
    [
        (
            {"faults": {"GetCustomJob": {2: grpc.StatusCode.PERMISSION_DENIED}}},
            None,
            "injected PERMISSION_DENIED on call 2 of GetCustomJob",
        ),
        (
            # The cancel itself meets an UNAVAILABLE first, and is retried.
            {
                "states": (S.JOB_STATE_PENDING, S.JOB_STATE_RUNNING),
                "faults": {"CancelCustomJob": {1: grpc.StatusCode.UNAVAILABLE}},
            },
            0.5,
            f"Vertex AI job {PARENT}/customJobs/1000 did not end in time: still JOB_STATE_RUNNING",
        ),
    ],
    indirect=["vertex"],
)
def test_a_step_that_stops_waiting_abnormally_cancels_its_job(
    gcs, vertex, max_wait_seconds, error, no_grace_period
):
    result = run_trained(trainer_for(vertex, max_wait_seconds=max_wait_seconds))
    assert not result.success
    assert error in failure_message(result)
    assert vertex.calls("CancelCustomJob")[-1].name == f"{PARENT}/customJobs/1000"
    assert vertex.jobs[f"{PARENT}/customJobs/1000"].state == S.JOB_STATE_CANCELLING
    assert not vertex.running(), "no job left billing"


# The first attempt of a step, in its own process, so that it can die without a chance to clean up.
FIRST_ATTEMPT = """
import sys, types
from karte_assets_tests.test_vertex_trainer import run_trained, trainer_for
vertex = types.SimpleNamespace(address=sys.argv[1])
run_trained(trainer_for(vertex, service_account=sys.argv[2]), run_id=sys.argv[3])
"""


def training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = 400
    purchases, noise = rng.poisson(2, rows), rng.normal(size=rows)
    return pd.DataFrame(
        {
            "snapshot_date": ["2026-06-01"] * (rows // 2) + ["2026-06-08"] * (rows // 2),
            "user_id": [f"u{i}" for i in range(rows)],
            "purchases_90d": purchases,
            "sessions_7d": noise,
            "label": (purchases + noise + rng.normal(size=rows) > 2).astype(int),
        }
    )


def wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_retried_step_reattaches_to_the_job_of_its_killed_attempt_and_reads_its_messages(gcs):
    data = io.BytesIO()
    training_frame().to_parquet(data)
    storage.Client(client_options={"api_endpoint": gcs.url}).bucket(BUCKET).blob(
        "data.parquet"
    ).upload_from_string(data.getvalue())
    # Jobs stay PENDING (provisioning) until released: the first attempt dies before its job starts.
    vertex = FakeJobService(run_commands=True, env=dict(os.environ), gcs=gcs, hold=True).start()
    run_id = str(uuid.uuid4())
    try:
        first = subprocess.Popen(
            [sys.executable, "-c", FIRST_ATTEMPT, vertex.address, TRAINER_SA, run_id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: vertex.calls("GetCustomJob"), "the first attempt to poll its job")
        first.kill()  # as when the step's process is OOM-killed or its node goes away
        first.wait()
        assert vertex.running() == [f"{PARENT}/customJobs/1000"], "the job outlives its step"

        def release_once_the_retry_has_looked():
            wait_for(lambda: len(vertex.calls("ListCustomJobs")) == 2, "the retry to list jobs")
            vertex.release()

        releaser = threading.Thread(target=release_once_the_retry_has_looked)
        releaser.start()
        result = run_trained(trainer_for(vertex, service_account=TRAINER_SA), run_id=run_id)
        releaser.join()
    finally:
        vertex.stop()
    assert len(vertex.calls("CreateCustomJob")) == 1, "one job, not two"
    (listed,) = {request.filter for request in vertex.calls("ListCustomJobs")}
    assert listed.startswith('labels.karte_job_key="')
    # The re-attached job read its context and its metrics came back through Pipes.
    assert result.success, failure_message(result)
    (materialization,) = result.asset_materializations_for_node("trained")
    assert 0 < materialization.metadata["validation_auc"].value <= 1
    assert vertex.jobs[f"{PARENT}/customJobs/1000"].state == S.JOB_STATE_SUCCEEDED
    assert not vertex.running()


def test_one_runs_tag_overrides_the_clients_worker_pool_and_without_gpus_the_learner_is_cpu(
    gcs, vertex, no_grace_period
):
    tag = {WORKER_POOL_TAG: '{"machine_type": "n1-highmem-16", "accelerator_count": 0}'}
    run_trained(trainer_for(vertex, client_worker_pools={"shop-a": GPU_POOL}), tags=tag)
    (request,) = vertex.calls("CreateCustomJob")
    (pool,) = request.custom_job.job_spec.worker_pool_specs
    assert (pool.machine_spec.machine_type, pool.machine_spec.accelerator_count) == ("n1-highmem-16", 0)
    assert sent_extras(gcs, pool)["lightgbm_params"]["device_type"] == "cpu"


@pytest.mark.parametrize(
    ("value", "error"),
    [('{"gpus": 2}', "unknown worker pool fields ['gpus']"), ("n1-highmem-16", "Expecting value")],
)
def test_a_worker_pool_tag_that_is_not_pool_fields_fails_naming_it_before_any_job(gcs, vertex, value, error):
    result = run_trained(trainer_for(vertex), tags={WORKER_POOL_TAG: value})
    assert f"run tag karte/worker_pool {value!r}: " in failure_message(result)
    assert error in failure_message(result)
    assert not vertex.calls("CreateCustomJob")


def test_each_clients_model_of_a_day_is_its_own_job_with_its_own_pipes_folder(gcs, vertex, no_grace_period):
    run_id = str(uuid.uuid4())
    for client_id in ("shop-a", "shop-b"):  # two clients' models of one day, in one run
        run_trained(trainer_for(vertex), job=dataclasses.replace(JOB, client_id=client_id), run_id=run_id)
    first, second = vertex.calls("CreateCustomJob")
    assert first.custom_job.labels["karte_job_key"] != second.custom_job.labels["karte_job_key"]
    contexts = {name.rsplit("/", 2)[-2] for name, _ in gcs.written if name.endswith("/context.json")}
    assert contexts == {"shop-a", "shop-b"}, "each client's Pipes files in a folder of its own"


def test_the_fake_job_service_refuses_a_filter_it_does_not_understand(vertex):
    # As Vertex AI answers INVALID_ARGUMENT to a malformed filter, the fake refuses what it cannot
    # evaluate rather than list every job.
    client = FakeJobService.client_for(vertex.address)
    with pytest.raises(InvalidArgument, match="Provided filter is not valid"):
        list(
            client.list_custom_jobs(request=ListCustomJobsRequest(parent=PARENT, filter='display_name:"x*"'))
        )
    listed = client.list_custom_jobs(
        request=ListCustomJobsRequest(parent=PARENT, filter='state!="JOB_STATE_FAILED"')
    )
    assert list(listed) == []


@pytest.mark.parametrize("vertex", [{"states": (S.JOB_STATE_PENDING, S.JOB_STATE_RUNNING)}], indirect=True)
def test_a_step_retried_after_it_cancelled_its_job_starts_a_fresh_one(gcs, vertex, no_grace_period):
    run_id = str(uuid.uuid4())
    for _ in range(2):
        run_trained(trainer_for(vertex, max_wait_seconds=0.3), run_id=run_id)
    first, second = vertex.calls("CreateCustomJob")
    assert first.custom_job.labels["karte_job_key"] == second.custom_job.labels["karte_job_key"]
    assert [cancel.name for cancel in vertex.calls("CancelCustomJob")] == [
        f"{PARENT}/customJobs/1000",
        f"{PARENT}/customJobs/1001",
    ]
