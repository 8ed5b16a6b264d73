"""The status record of a finished run: what ran, how it ended, which model it produced."""

import datetime as dt

from dagster import DagsterEventType, DagsterInstance, DagsterRun, RunStatusChangeRecordsFilter
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._utils.error import SerializableErrorInfo

RUN_END_STATUSES = {
    DagsterEventType.RUN_SUCCESS: "SUCCESS",
    DagsterEventType.RUN_FAILURE: "FAILURE",
    DagsterEventType.RUN_CANCELED: "CANCELED",
}
# Metadata of the model asset that consumers of the status care about.
MODEL_METRICS = ("validation_auc", "baseline_auc", "models_trained")


def _iso(timestamp: float | None) -> str | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat() if timestamp else None


def _partitions(run: DagsterRun) -> dict[str, str] | None:
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return {"start": tags[PARTITION_NAME_TAG], "end": tags[PARTITION_NAME_TAG]}
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return {"start": tags[ASSET_PARTITION_RANGE_START_TAG], "end": tags[ASSET_PARTITION_RANGE_END_TAG]}
    return None


def _planned_asset_steps(instance: DagsterInstance, run: DagsterRun) -> dict[str, str]:
    """The assets the run set out to materialise, each with the key of the step that does it."""
    if run.execution_plan_snapshot_id is None:  # never planned, e.g. cancelled while queued
        return {key.to_user_string(): key.to_python_identifier() for key in run.asset_selection or ()}
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    to_execute = set(plan.step_keys_to_execute or [step.key for step in plan.steps])
    return {
        output.properties.asset_key.to_user_string(): step.key
        for step in plan.steps
        if step.key in to_execute
        for output in step.outputs
        if output.properties and output.properties.asset_key
    }


def _root_cause(error: SerializableErrorInfo) -> str:
    # Dagster wraps the asset's exception ("Error occurred while executing op ..."): report the
    # exception the asset raised, which names what went wrong.
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _error(instance: DagsterInstance, run: DagsterRun, step_failures: dict[str, str]) -> str:
    """The failed steps' errors; else (the run failed outside any step) the run failure's message."""
    if step_failures:
        return "; ".join(f"{step}: {message}" for step, message in sorted(step_failures.items()))
    events = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    return events[-1].dagster_event.message if events else "the run failed"


def status_record(
    instance: DagsterInstance, run: DagsterRun, status: str, environment: str
) -> dict[str, object]:
    """A JSON-ready record of ``run``, which ended with ``status``."""
    materialized: dict[str, list[str]] = {}
    metrics: dict[str, object] = {}
    model_id = None
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.dagster_event.event_specific_data.materialization
        name = materialization.asset_key.to_user_string()
        materialized.setdefault(name, []).append(materialization.partition)
        values = {key: value.value for key, value in materialization.metadata.items()}
        if name == "loyalty_model":
            metrics.update({key: values[key] for key in MODEL_METRICS if key in values})
        if "model_version" in values:
            model_id = values["model_version"]
    failures = {
        entry.step_key: _root_cause(entry.dagster_event.step_failure_data.error)
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        if entry.dagster_event.step_failure_data.error
    }
    steps = _planned_asset_steps(instance, run)
    assets = []
    for name in sorted(steps.keys() | materialized.keys()):
        step = steps.get(name)
        outcome = (
            "failed" if step in failures else "materialized" if name in materialized else "not_materialized"
        )
        assets.append(
            {
                "asset": name,
                "outcome": outcome,
                "partitions": sorted({p for p in materialized.get(name, []) if p}),
            }
        )
    stats = instance.get_run_stats(run.run_id)
    return {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "status": status,
        "environment": environment,
        "partitions": _partitions(run),
        "assets": assets,
        "model_id": model_id,
        "metrics": metrics,
        "error": _error(instance, run, failures) if status == "FAILURE" else None,
        "started_at": _iso(stats.start_time),
        "ended_at": _iso(stats.end_time),
        "idempotency_key": f"{run.run_id}:{status}",
    }


def unavailable_record(run_id: str, status: str, environment: str, reason: str) -> dict[str, object]:
    """The record of a run whose details cannot be loaded: its status is still reported, with the
    fields of ``status_record`` that need the run left empty and ``error`` saying why."""
    return {
        "run_id": run_id,
        "job_name": None,
        "status": status,
        "environment": environment,
        "partitions": None,
        "assets": [],
        "model_id": None,
        "metrics": {},
        "error": f"run record unavailable: {reason}",
        "started_at": None,
        "ended_at": None,
        "idempotency_key": f"{run_id}:{status}",
    }


def ended_runs_after(
    instance: DagsterInstance, after_storage_id: int, limit: int
) -> list[tuple[int, str, str]]:
    """(storage id, run id, status) of the run-end events after ``after_storage_id``, oldest first."""
    events = []
    for event_type, status in RUN_END_STATUSES.items():
        result = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after_storage_id),
            limit=limit,
            ascending=True,
        )
        events += [(record.storage_id, record.run_id, status) for record in result.records]
    return sorted(events)[:limit]
