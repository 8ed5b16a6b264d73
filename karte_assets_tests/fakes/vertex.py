"""A loopback gRPC stand-in for the Vertex AI JobService: CreateCustomJob, GetCustomJob,
ListCustomJobs and CancelCustomJob, served on 127.0.0.1 for the official google-cloud-aiplatform client.

Jobs live in the service, not in the client: one goes on running after the step that created it
dies, as on Vertex AI (``running()`` counts them). ``faults`` injects errors on chosen calls, e.g.
``{"GetCustomJob": {2: grpc.StatusCode.UNAVAILABLE}}`` fails the second GetCustomJob, as Google's
front ends do now and then. ``hold`` keeps new jobs PENDING (provisioning) until ``release()``.

A job either runs its container's command as a local process (``run_commands=True``: the command
gets the container's env, so a Pipes job talks back through the fake GCS like on Vertex AI), or
walks through a scripted list of states, one per GetCustomJob, ending with ``error``.

With ``gcs``, a job's process reaches the fake GCS as the identity the job runs as: the job spec's
``service_account``, or else Vertex AI's Custom Code Service Agent
(https://cloud.google.com/vertex-ai/docs/general/access-control#service-agents), which holds no
role on the bucket unless granted one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from concurrent import futures

import grpc
from google.cloud.aiplatform_v1 import JobServiceClient
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport
from google.cloud.aiplatform_v1.types import (
    CancelCustomJobRequest,
    CreateCustomJobRequest,
    CustomJob,
    GetCustomJobRequest,
    JobState,
    ListCustomJobsRequest,
    ListCustomJobsResponse,
)
from google.protobuf import empty_pb2
from google.rpc import status_pb2

from karte_assets_tests.fakes.gcs import FakeGcs

SERVICE = "google.cloud.aiplatform.v1.JobService"
S = JobState
ENDED = {S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED, S.JOB_STATE_CANCELLED, S.JOB_STATE_EXPIRED}
# The subset of ListCustomJobsRequest.filter the fake understands: terms joined by AND, each
# labels.<key>="<value>", state="<STATE>" or state!="<STATE>" (types/job_service.py, the filter
# field; https://google.aip.dev/160). Anything else is refused, as Vertex AI refuses a bad filter.
_FILTER_TERM = re.compile(r'^(labels\.([a-z][a-z0-9_-]*)=|state(!?=))"?([A-Za-z0-9_-]*)"?$')


def job_identity(job: CustomJob) -> str:
    """The identity whose credentials the job's container gets."""
    project = job.name.split("/")[1]  # the project number in the real agent's name
    return job.job_spec.service_account or f"service-{project}@gcp-sa-aiplatform-cc.iam.gserviceaccount.com"


class FakeJobService:
    """Every request is kept in ``requests`` as (method, proto-plus request)."""

    def __init__(
        self,
        run_commands: bool = False,
        states: tuple[JobState, ...] = (S.JOB_STATE_PENDING, S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED),
        error: str = "",
        env: dict[str, str] | None = None,
        gcs: FakeGcs | None = None,
        faults: dict[str, dict[int, grpc.StatusCode]] | None = None,
        hold: bool = False,
    ) -> None:
        self.run_commands = run_commands
        self.gcs = gcs
        self.faults = faults or {}
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self.states = states
        self.error = error
        self.env = env or {}
        self.requests: list[tuple[str, object]] = []
        self.jobs: dict[str, CustomJob] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.output: dict[str, str] = {}
        self._polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.address = ""

    @staticmethod
    def client_for(address: str) -> JobServiceClient:
        """The official client, on a plaintext channel to the fake at ``address``."""
        return JobServiceClient(transport=JobServiceGrpcTransport(channel=grpc.insecure_channel(address)))

    def start(self) -> FakeJobService:
        def handler(function, request_type, response_type):
            return grpc.unary_unary_rpc_method_handler(
                function,
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.SerializeToString
                if response_type is empty_pb2.Empty
                else response_type.serialize,
            )

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "CreateCustomJob": handler(self._create, CreateCustomJobRequest, CustomJob),
                        "GetCustomJob": handler(self._get, GetCustomJobRequest, CustomJob),
                        "CancelCustomJob": handler(self._cancel, CancelCustomJobRequest, empty_pb2.Empty),
                        "ListCustomJobs": handler(self._list, ListCustomJobsRequest, ListCustomJobsResponse),
                    },
                ),
            )
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.address = f"127.0.0.1:{port}"
        return self

    def release(self) -> None:
        """Held jobs start."""
        self._released.set()

    def running(self) -> list[str]:
        """The jobs that have not ended and are not being cancelled: what is still billing."""
        with self._lock:
            return [n for n, j in self.jobs.items() if j.state not in ENDED | {S.JOB_STATE_CANCELLING}]

    def stop(self) -> None:
        with self._lock:  # held jobs never start
            for job in self.jobs.values():
                if job.state == S.JOB_STATE_PENDING:
                    job.state = S.JOB_STATE_CANCELLED
        self._released.set()
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        if self._server is not None:
            self._server.stop(grace=None)

    def calls(self, method: str) -> list:
        return [request for name, request in self.requests if name == method]

    def _record(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        """Keeps the request, then fails it if a fault is set for this call of ``method``."""
        self.requests.append((method, request))
        code = self.faults.get(method, {}).get(len(self.calls(method)))
        if code is not None:
            context.abort(code, f"injected {code.name} on call {len(self.calls(method))} of {method}")

    def _create(self, request: CreateCustomJobRequest, context: grpc.ServicerContext) -> CustomJob:
        self._record("CreateCustomJob", request, context)
        with self._lock:
            name = f"{request.parent}/customJobs/{1000 + len(self.jobs)}"
            job = CustomJob(request.custom_job)
            job.name, job.state = name, S.JOB_STATE_PENDING
            self.jobs[name] = job
            self._polls[name] = 0
        if self.run_commands:
            threading.Thread(target=self._launch, args=(job,), daemon=True).start()
        return CustomJob(job)

    def _launch(self, job: CustomJob) -> None:
        self._released.wait()
        container = job.job_spec.worker_pool_specs[0].container_spec
        # The image's "python" is this interpreter, which has the project installed.
        command = [sys.executable if part == "python" else part for part in container.command]
        env = {**self.env, **{variable.name: variable.value for variable in container.env}}
        if self.gcs is not None:
            env["STORAGE_EMULATOR_HOST"] = self.gcs.endpoint_for(job_identity(job))
        with self._lock:
            if job.state != S.JOB_STATE_PENDING:  # cancelled while held
                return
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            self.processes[job.name] = process
            job.state = S.JOB_STATE_RUNNING
        threading.Thread(target=self._finish, args=(job, process), daemon=True).start()

    def _finish(self, job: CustomJob, process: subprocess.Popen) -> None:
        output = process.communicate()[0]
        with self._lock:
            self.output[job.name] = output
            if job.state == S.JOB_STATE_CANCELLING:
                job.state = S.JOB_STATE_CANCELLED
            elif process.returncode == 0:
                job.state = S.JOB_STATE_SUCCEEDED
            else:
                job.state = S.JOB_STATE_FAILED
                last = output.strip().splitlines()[-1:] or [""]
                job.error = status_pb2.Status(
                    code=3,
                    message=f"The replica workerpool0-0 exited with a non-zero status of {process.returncode}. {last[0]}",
                )

    def _get(self, request: GetCustomJobRequest, context: grpc.ServicerContext) -> CustomJob:
        self._record("GetCustomJob", request, context)
        with self._lock:
            job = self.jobs.get(request.name)
            if job is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {request.name} not found")
            if not self.run_commands and job.state not in (S.JOB_STATE_CANCELLING, S.JOB_STATE_CANCELLED):
                self._polls[job.name] += 1
                job.state = self.states[min(self._polls[job.name], len(self.states) - 1)]
                if job.state == S.JOB_STATE_FAILED:
                    job.error = status_pb2.Status(code=9, message=self.error)
            elif job.state == S.JOB_STATE_CANCELLING and job.name not in self.processes:
                job.state = S.JOB_STATE_CANCELLED
            return CustomJob(job)

    def _list(self, request: ListCustomJobsRequest, context: grpc.ServicerContext) -> ListCustomJobsResponse:
        self._record("ListCustomJobs", request, context)
        tests = []
        for term in filter(None, request.filter.split(" AND ")):
            match = _FILTER_TERM.match(term.strip())
            if match is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Provided filter is not valid: {term!r}")
            _, key, operator, value = match.groups()
            if key is not None:
                tests.append(lambda job, key=key, value=value: job.labels.get(key) == value)
            elif value not in S.__members__:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unknown job state in filter: {value!r}")
            else:
                tests.append(lambda job, value=value, eq=operator == "=": (job.state.name == value) == eq)
        with self._lock:
            jobs = [
                CustomJob(job)
                for name, job in self.jobs.items()
                if name.startswith(request.parent + "/") and all(test(job) for test in tests)
            ]
        return ListCustomJobsResponse(custom_jobs=jobs)

    def _cancel(self, request: CancelCustomJobRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self._record("CancelCustomJob", request, context)
        with self._lock:
            job = self.jobs.get(request.name)
            if job is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {request.name} not found")
            if job.state in ENDED:  # Vertex AI refuses to cancel an ended job
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"CustomJob {request.name} is in state {job.state.name}",
                )
            job.state = S.JOB_STATE_CANCELLING
            process = self.processes.get(job.name)
        if process is not None:
            process.kill()
        return empty_pb2.Empty()
