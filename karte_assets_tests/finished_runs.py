"""Real runs of the graph that ended each way a status message reports: succeeded, failed, cancelled."""

import datetime as dt

from dagster._core.test_utils import create_run_for_test

from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with


def one_run_of_each_outcome(graph: LocalGraph) -> dict[str, str]:
    """Status -> run id: day 1 succeeds, day 2 fails reading event files that do not exist, a queued run is cancelled."""
    ok = graph.materialize(FIRST_DAY)
    broken = graph.materialize(
        FIRST_DAY + dt.timedelta(days=1),
        run_config=config_with(raw_events={"source": str(graph.home / "missing-*.parquet")}),
        raise_on_error=False,
    )
    # As when a queued run is cancelled from the UI before it starts.
    cancelled = create_run_for_test(graph.instance, job_name="loyalty_daily_job")
    graph.instance.report_run_canceling(cancelled)
    graph.instance.report_run_canceled(cancelled)
    return {"SUCCESS": ok.run_id, "FAILURE": broken.run_id, "CANCELED": cancelled.run_id}
