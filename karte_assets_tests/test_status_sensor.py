"""The status sensor writes one record per finished run: succeeded, failed or cancelled."""

import json

from dagster import build_sensor_context
from dagster._core.storage.runs.schema import SnapshotsTable

from karte_assets.automation.sensors import run_status_publisher
from karte_assets_tests.finished_runs import one_run_of_each_outcome


def tick(graph, cursor=None):
    context = build_sensor_context(
        instance=graph.instance, cursor=cursor, resources={"status": graph.resources["status"]}
    )
    run_status_publisher(context)
    return context.cursor


def records(graph) -> list[dict]:
    path = graph.home / "status.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_records_for_a_succeeded_a_failed_and_a_cancelled_run_each_once(graph):
    runs = one_run_of_each_outcome(graph)
    cursor = tick(graph)
    by_run = {record["run_id"]: record for record in records(graph)}
    assert set(by_run) == set(runs.values())

    success = by_run[runs["SUCCESS"]]
    assert success["status"] == "SUCCESS"
    assert success["partitions"] == {"start": "2026-06-01", "end": "2026-06-01"}
    assert {a["asset"]: a["outcome"] for a in success["assets"]}["loyalty_scores"] == "materialized"
    assert success["model_id"] == "baseline:purchases_90d"
    assert success["error"] is None

    failure = by_run[runs["FAILURE"]]
    assert failure["status"] == "FAILURE"
    assert "matches no file" in failure["error"]
    outcomes = {a["asset"]: a["outcome"] for a in failure["assets"]}
    assert outcomes["raw_events"] == "failed"
    assert outcomes["loyalty_scores"] == "not_materialized"

    assert by_run[runs["CANCELED"]]["status"] == "CANCELED"

    # A later tick from the saved cursor sends nothing again.
    tick(graph, cursor)
    assert len(records(graph)) == 3


def test_a_run_that_cannot_be_loaded_gets_a_minimal_record_and_holds_back_no_later_run(graph):
    runs = one_run_of_each_outcome(graph)
    # The run row is gone, its run-end event still listed: as when the run is deleted after it
    # ended, between the sensor listing the event and loading the run.
    graph.instance.run_storage.delete_run(runs["SUCCESS"])
    # A run whose record cannot be built: its execution plan snapshot was pruned from storage.
    failed_plan = graph.instance.get_run_by_id(runs["FAILURE"]).execution_plan_snapshot_id
    with graph.instance.run_storage.connect() as connection:
        connection.execute(SnapshotsTable.delete().where(SnapshotsTable.c.snapshot_id == failed_plan))

    cursor = tick(graph)

    by_run = {record["run_id"]: record for record in records(graph)}
    assert set(by_run) == set(runs.values()), "every run's status is delivered"
    deleted = by_run[runs["SUCCESS"]]
    assert deleted["status"] == "SUCCESS" and deleted["assets"] == []
    assert deleted["error"].startswith("run record unavailable: LookupError: the run no longer exists")
    pruned = by_run[runs["FAILURE"]]
    assert pruned["status"] == "FAILURE" and pruned["error"].startswith("run record unavailable: ")
    assert by_run[runs["CANCELED"]]["job_name"] == "loyalty_daily_job", "later runs get full records"
    tick(graph, cursor)
    assert len(records(graph)) == 3, "the cursor moved past the unloadable run"
