"""The status record of a finished run: what ran, how it ended, which model it produced."""

import datetime as dt

from dagster import DagsterEventType, DagsterInstance, DagsterRun, RunStatusChangeRecordsFilter
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

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


def status_record(
    instance: DagsterInstance, run: DagsterRun, status: str, environment: str
) -> dict[str, object]:
    """A JSON-ready record of ``run``, which ended with ``status``."""
    materialized: dict[str, list[str]] = {}
    metrics: dict[str, object] = {}
    model_version = None
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.dagster_event.event_specific_data.materialization
        name = materialization.asset_key.to_user_string()
        materialized.setdefault(name, []).append(materialization.partition)
        values = {key: value.value for key, value in materialization.metadata.items()}
        if name == "loyalty_model":
            metrics.update({key: values[key] for key in MODEL_METRICS if key in values})
        if "model_version" in values:
            model_version = values["model_version"]
    failures = {
        entry.step_key: entry.dagster_event.step_failure_data.error.message.strip()
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        if entry.dagster_event.step_failure_data.error
    }
    targeted = sorted(key.to_user_string() for key in run.asset_selection or ())
    assets = []
    for name in sorted(set(targeted) | materialized.keys()):
        step = name.replace("/", "__")
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
        "model_version": model_version,
        "metrics": metrics,
        "error": "; ".join(f"{step}: {message}" for step, message in sorted(failures.items())) or None,
        "started_at": _iso(stats.start_time),
        "ended_at": _iso(stats.end_time),
        "idempotency_key": f"{run.run_id}:{status}",
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
