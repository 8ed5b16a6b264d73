"""The status sensor writes one record per finished run: succeeded, failed or cancelled."""

import datetime as dt
import json

from dagster import build_sensor_context
from dagster._core.test_utils import create_run_for_test

from karte_assets.automation.sensors import run_status_publisher
from karte_assets_tests.graph import FIRST_DAY, config_with


def tick(graph, cursor=None):
    context = build_sensor_context(
        instance=graph.instance, cursor=cursor, resources={"status": graph.resources["status"]}
    )
    run_status_publisher(context)
    return context.cursor


def records(graph) -> list[dict]:
    path = graph.home / "status.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_records_for_a_succeeded_a_failed_and_a_cancelled_run_each_once(graph, tmp_path):
    ok = graph.materialize(FIRST_DAY, FIRST_DAY + dt.timedelta(days=1))
    broken = graph.materialize(
        FIRST_DAY + dt.timedelta(days=2),
        run_config=config_with(raw_events={"source": str(tmp_path / "missing-*.parquet")}),
        raise_on_error=False,
    )
    # As when a queued run is cancelled from the UI before it starts.
    run = create_run_for_test(graph.instance, job_name="loyalty_daily_job")
    graph.instance.report_run_canceling(run)
    graph.instance.report_run_canceled(run)

    cursor = tick(graph)
    by_run = {record["run_id"]: record for record in records(graph)}
    assert set(by_run) == {ok.run_id, broken.run_id, run.run_id}

    success = by_run[ok.run_id]
    assert success["status"] == "SUCCESS"
    assert success["partitions"] == {"start": "2026-06-01", "end": "2026-06-02"}
    assert {a["asset"]: a["outcome"] for a in success["assets"]}["loyalty_scores"] == "materialized"
    assert success["model_id"] == "baseline:purchases_90d"

    failure = by_run[broken.run_id]
    assert failure["status"] == "FAILURE"
    assert "matches no file" in failure["error"]
    outcomes = {a["asset"]: a["outcome"] for a in failure["assets"]}
    assert outcomes["raw_events"] == "failed"
    assert outcomes["loyalty_scores"] == "not_materialized"

    assert by_run[run.run_id]["status"] == "CANCELED"

    # A later tick from the saved cursor sends nothing again.
    tick(graph, cursor)
    assert len(records(graph)) == 3
