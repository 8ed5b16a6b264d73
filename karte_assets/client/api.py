"""Launch, follow and cancel a client's runs on a deployment, through Dagster's GraphQL Python client."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster import AssetKey, DagsterRunStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from dagster_graphql.client.client_queries import CLIENT_GET_REPO_LOCATIONS_NAMES_AND_PIPELINES_QUERY
from dagster_graphql.client.utils import JobInfo
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError
from gql.transport.requests import RequestsHTTPTransport

from karte_assets.client.deployments import endpoint
from karte_assets.client.errors import DeploymentError, RequestError, RunNotFound
from karte_assets.client.queries import LAUNCH_CHECK_QUERY, RUN_DETAILS_QUERY
from karte_assets.client.use_cases import CLIENT_TAG, Target, lookup
from karte_assets.resources.worker_pool import WORKER_POOL_TAG, WorkerPool

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class AssetOutcome:
    """What one asset of a run did. ``outcome`` is ``materialized``, ``failed`` or
    ``not_materialized`` (as in the run-status message), or ``in_progress`` / ``pending`` while the
    run has not ended."""

    asset: str
    outcome: str
    partitions: list[str]


@dataclass(frozen=True)
class RunReport:
    """A run as the product sees it; the fields it shares with the run-status message on Pub/Sub
    (docs/status-and-tracking.md) have the same names and values."""

    run_id: str
    job_name: str
    status: str  # a DagsterRunStatus value: QUEUED, STARTING, STARTED, CANCELING, SUCCESS, FAILURE, CANCELED
    client: str | None  # the run's karte/client tag
    partitions: dict[str, str] | None  # {"start": ..., "end": ...}, the day or range
    assets: list[AssetOutcome]
    started_at: str | None
    ended_at: str | None

    @property
    def finished(self) -> bool:
        return DagsterRunStatus(self.status) in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_config_for(overrides: Mapping[str, object]) -> dict[str, Any]:
    """Run config that sets only ``overrides`` (``asset.parameter`` -> value); everything else keeps
    its default, as in the launchpad."""
    ops: dict[str, Any] = {}
    for name, value in overrides.items():
        asset, _, parameter = name.partition(".")
        if not asset or not parameter:
            raise RequestError(
                f"parameter {name!r} is not <asset>.<parameter>, e.g. loyalty_scores.tier_a_share"
            )
        node = ops.setdefault(asset, {"config": {}})["config"]
        *parents, leaf = parameter.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RequestError(f"parameter {name!r} sets a field inside a value set by another override")
        node[leaf] = value
    return {"ops": ops} if ops else {}


def _iso(timestamp: float | None) -> str | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat() if timestamp else None


class Platform:
    """The runs of one deployment (``local``, ``dev`` or ``prod``; see ``deployments.endpoint``).

    Not thread-safe (one HTTP session at a time, like ``DagsterGraphQLClient``): use one per thread.
    """

    def __init__(
        self, deployment: str = "local", environ: Mapping[str, str] = os.environ, timeout_s: int = 60
    ):
        self.endpoint = endpoint(deployment, environ)
        url = urlsplit(self.endpoint.url)
        transport = RequestsHTTPTransport(
            url=f"{self.endpoint.url}/graphql",
            use_json=True,
            timeout=timeout_s,
            headers=dict(self.endpoint.headers),
        )
        self._dagster = DagsterGraphQLClient(
            url.hostname or "",
            port_number=url.port,
            transport=transport,
            use_https=url.scheme == "https",
            path_prefix=url.path,
        )
        # The same transport for the two queries the client has no call for (queries.py).
        self._gql = Client(transport=transport)

    # -- launching ---------------------------------------------------------------------------------

    def launch(
        self,
        use_case: str,
        client: str,
        start: dt.date,
        end: dt.date | None = None,
        overrides: Mapping[str, object] | None = None,
        assets: Sequence[str] | None = None,
        worker_pool: Mapping[str, object] | None = None,
    ) -> str:
        """Launch ``use_case`` for ``client`` over the days ``start``..``end`` (one day without
        ``end``) as ONE run, and return its run id: the id the run-status message will carry.

        ``overrides`` (``{"loyalty_scores.tier_a_share": 0.05}``) set run config; every other
        parameter keeps its default. ``assets`` limits the run to some of the use case's assets.
        ``worker_pool`` (``{"machine_type": "g2-standard-8"}``) overrides fields of the Vertex AI
        training machine for this run only (the run tag the Vertex trainer reads).
        Everything is checked first (use case, client, days, parameters against the deployment's
        config schema and the parameters' own rules); a ``RequestError`` means nothing was launched.
        """
        target = lookup(use_case, client)
        end = end or start
        if end < start:
            raise RequestError(f"the range {start}...{end} is inverted: its end is before its start")
        tags = dict(target.tags)
        if worker_pool:
            try:
                WorkerPool().with_overrides(worker_pool)
            except ValueError as error:  # pydantic's ValidationError is one
                raise RequestError(f"worker pool {dict(worker_pool)}: {error}") from error
            tags[WORKER_POOL_TAG] = json.dumps(dict(worker_pool), sort_keys=True)
        run_config = run_config_for(overrides or {})
        job = self._job(target)
        selection = [AssetKey.from_user_string(name) for name in assets or ()]
        self._check(target, job, start, end, run_config, selection, overrides or {})
        if start == end:
            tags[PARTITION_NAME_TAG] = start.isoformat()
        else:
            # A single-run backfill: the range tags make one run read context.partition_keys for
            # every day (as `dagster asset materialize --partition-range` does, dagster/_cli/asset.py).
            tags[ASSET_PARTITION_RANGE_START_TAG] = start.isoformat()
            tags[ASSET_PARTITION_RANGE_END_TAG] = end.isoformat()
        try:
            return self._dagster.submit_job_execution(
                target.job,
                repository_location_name=job.repository_location_name,
                repository_name=job.repository_name,
                run_config=run_config,
                tags=tags,
                asset_selection=selection or None,
            )
        except DagsterGraphQLClientError as error:
            raise DeploymentError(f"{self.endpoint.name}: launching {target.job} failed: {error}") from error

    def _job(self, target: Target) -> JobInfo:
        """The code location and repository that hold the use case's job on this deployment."""
        result = self._query(CLIENT_GET_REPO_LOCATIONS_NAMES_AND_PIPELINES_QUERY)["repositoriesOrError"]
        if result["__typename"] != "RepositoryConnection":
            raise DeploymentError(f"{self.endpoint.name}: cannot list its jobs: {result.get('message')}")
        jobs = [
            job for node in result["nodes"] for job in JobInfo.from_node(node) if job.job_name == target.job
        ]
        if len(jobs) != 1:
            found = "no code location has" if not jobs else f"{len(jobs)} code locations have"
            raise DeploymentError(
                f"{self.endpoint.name}: {found} the job {target.job} of use case {target.use_case!r}"
            )
        return jobs[0]

    def _check(
        self,
        target: Target,
        job: JobInfo,
        start: dt.date,
        end: dt.date,
        run_config: dict[str, Any],
        selection: list[AssetKey],
        overrides: Mapping[str, object],
    ) -> None:
        """Refuse, before submitting, a run the deployment would refuse or run wrongly."""
        selector = {
            "repositoryLocationName": job.repository_location_name,
            "repositoryName": job.repository_name,
            "pipelineName": target.job,
        }
        result = self._query(
            LAUNCH_CHECK_QUERY,
            {
                "selector": selector,
                "selection": {
                    **selector,
                    "assetSelection": [key.to_graphql_input() for key in selection] or None,
                },
                "runConfigData": run_config,
            },
        )
        pipeline = result["pipelineOrError"]
        if pipeline["__typename"] != "Pipeline":
            raise DeploymentError(f"{self.endpoint.name}: job {target.job}: {pipeline['message']}")
        nodes = {AssetKey(node["assetKey"]["path"]): node for node in result["assetNodes"]}
        _check_assets(target, nodes, selection, overrides)
        days = pipeline["partitionKeysOrError"]["partitionKeys"]
        for day in {start, end}:
            if day.isoformat() not in days:
                raise RequestError(
                    f"{day} is not a day of {target.job} on {self.endpoint.name}: its days are {days[0]} to {days[-1]}"
                    if days
                    else f"{target.job} on {self.endpoint.name} has no days yet"
                )
        if start != end:
            several = sorted(
                key.to_user_string()
                for key in selection or nodes
                if (nodes[key]["backfillPolicy"] or {}).get("policyType") != "SINGLE_RUN"
            )
            if several:
                raise RequestError(
                    f"the range {start}...{end} cannot be one run: {', '.join(several)} lack a single-run backfill policy"
                )
        validity = result["isPipelineConfigValid"]
        if validity["__typename"] == "RunConfigValidationInvalid":
            raise RequestError("\n".join(_config_error(error, overrides) for error in validity["errors"]))
        if validity["__typename"] != "PipelineConfigValidationValid":
            raise DeploymentError(
                f"{self.endpoint.name}: validating the parameters failed: {validity['message']}"
            )
        problems = _parameter_rule_problems(run_config)
        if problems:
            raise RequestError("\n".join(problems))

    # -- following and cancelling ------------------------------------------------------------------

    def status(self, run_id: str) -> RunReport:
        """The run's status, and what each of its assets did so far."""
        status = self._run_status(run_id)
        run = self._query(RUN_DETAILS_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise RunNotFound(f"{self.endpoint.name}: {run['message']}")
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        return RunReport(
            run_id=run["runId"],
            job_name=run["jobName"],
            status=status.value,
            client=tags.get(CLIENT_TAG),
            partitions=_partitions(tags),
            assets=_outcomes(run, finished=status in FINISHED),
            started_at=_iso(run["startTime"]),
            ended_at=_iso(run["endTime"]),
        )

    def wait(self, run_id: str, timeout_s: float, poll_s: float = 1.0) -> RunReport:
        """The run's report once it has ended; ``TimeoutError`` if it has not after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            report = self.status(run_id)
            if report.finished:
                return report
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {report.status} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def cancel(self, run_id: str, start_timeout_s: float = 120.0) -> None:
        """Ask the deployment to cancel the run: a queued run is dropped, a running one is stopped
        and ends ``CANCELED``. A run that has already ended is a ``RequestError``.

        Dagster cancels only QUEUED and STARTED runs (``CANCELABLE_RUN_STATUSES`` in
        dagster/_core/storage/dagster_run.py); a run still STARTING (its worker loading the code)
        is cancelled as soon as it has started, waiting at most ``start_timeout_s``.
        """
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                self._dagster.terminate_run(run_id)
                return
            except DagsterGraphQLClientError as error:
                if not error.args or error.args[0] != "TerminateRunFailure":
                    raise self._run_error(run_id, error) from error
                refusal = error
            starting = self._run_status(run_id) in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING)
            if not starting or time.monotonic() > deadline:
                raise RequestError(f"run {run_id} cannot be cancelled: {refusal.args[1]}")
            time.sleep(1.0)

    # -- transport ---------------------------------------------------------------------------------

    def _run_status(self, run_id: str) -> DagsterRunStatus:
        try:
            return self._dagster.get_run_status(run_id)
        except DagsterGraphQLClientError as error:
            raise self._run_error(run_id, error) from error

    def _run_error(self, run_id: str, error: DagsterGraphQLClientError) -> Exception:
        if error.args and error.args[0] in ("RunNotFoundError", "PipelineRunNotFoundError"):
            return RunNotFound(f"{self.endpoint.name} has no run {run_id}")
        return DeploymentError(f"{self.endpoint.name}: {error}")

    def _query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self._gql.execute(GraphQLRequest(document, variable_values=variables))
        except (TransportError, requests.RequestException) as error:
            raise DeploymentError(f"{self.endpoint.name} ({self.endpoint.url}): {error}") from error


def _check_assets(
    target: Target, nodes: Mapping[AssetKey, Any], selection: list[AssetKey], overrides: Mapping[str, object]
) -> None:
    """Each selected asset, and the asset of each override, is one of the job's and of the run's."""
    known = f"the assets of use case {target.use_case!r} are {', '.join(sorted(k.to_user_string() for k in nodes))}"
    for key in selection:
        if key not in nodes:
            raise RequestError(f"no asset {key.to_user_string()!r}: {known}")
    for name in overrides:
        asset = AssetKey.from_user_string(name.partition(".")[0])
        if asset not in nodes:
            raise RequestError(f"parameter {name}: no asset {asset.to_user_string()!r}: {known}")
        # Dagster accepts, and the run ignores, config of an asset outside the run's subset.
        if selection and asset not in selection:
            raise RequestError(
                f"parameter {name}: the run does not execute {asset.to_user_string()!r} "
                f"(it runs {', '.join(key.to_user_string() for key in selection)})"
            )


def _config_error(error: Mapping[str, Any], overrides: Mapping[str, object]) -> str:
    """A config schema error, named by the override it concerns (``loyalty_scores.tier_a_share``)."""
    # The error's place in the config, e.g. ops > loyalty_scores > config (its `path` field is always
    # empty in dagster-graphql 1.13: dagster_graphql/schema/pipelines/config.py, "TODO: remove").
    path = [entry["fieldName"] for entry in error["stack"]["entries"] if "fieldName" in entry]
    if path[:1] == ["ops"]:
        path = path[1:]
    if len(path) > 1 and path[1] == "config":
        del path[1]
    fields = error.get("fieldNames") or ([error["fieldName"]] if error.get("fieldName") else [""])
    names = []
    for field in fields:
        prefix = ".".join([*path, field] if field else path)
        names += [name for name in overrides if name == prefix or name.startswith(prefix + ".")] or [prefix]
    return f"parameter {', '.join(dict.fromkeys(names))}: {error['message']}"


def _parameter_rule_problems(run_config: Mapping[str, Any]) -> list[str]:
    """The rules of the assets' Config classes that Dagster's config schema cannot express (bounds,
    tier A + B at most 1), the same check a run makes before its first write (``check_run``)."""
    if not run_config:
        return []
    # The Config classes register themselves when their assets are defined: loading them costs
    # seconds, so only a launch with overrides pays it.
    import karte_assets.definitions  # noqa: F401
    from karte_assets.assets.common import config_problems

    return config_problems(run_config)


def _partitions(tags: Mapping[str, str]) -> dict[str, str] | None:
    if PARTITION_NAME_TAG in tags:
        return {"start": tags[PARTITION_NAME_TAG], "end": tags[PARTITION_NAME_TAG]}
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return {"start": tags[ASSET_PARTITION_RANGE_START_TAG], "end": tags[ASSET_PARTITION_RANGE_END_TAG]}
    return None


def _outcomes(run: Mapping[str, Any], finished: bool) -> list[AssetOutcome]:
    """Each targeted asset's outcome, by the status of the step that computes it: a plain asset's
    step key is its key as a Python identifier (the op name Dagster gives it)."""
    plan = run["executionPlan"]
    targeted = (plan and plan["assetKeys"]) or run["assetSelection"] or []
    steps = {step["stepKey"]: step["status"] for step in run["stepStats"]}
    materialized: dict[AssetKey, set[str]] = {}
    for event in run["assetMaterializations"]:
        partitions = materialized.setdefault(AssetKey(event["assetKey"]["path"]), set())
        if event["partition"]:
            partitions.add(event["partition"])
    outcomes = []
    for key in sorted({AssetKey(node["path"]) for node in targeted} | materialized.keys()):
        step = steps.get(key.to_python_identifier())
        if step == "FAILURE":
            outcome = "failed"
        elif step == "IN_PROGRESS":
            outcome = "in_progress"
        elif key in materialized:
            outcome = "materialized"
        else:
            outcome = "not_materialized" if finished or step else "pending"
        outcomes.append(AssetOutcome(key.to_user_string(), outcome, sorted(materialized.get(key, ()))))
    return outcomes
