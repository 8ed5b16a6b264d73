from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from karte_assets.automation.run_status import ended_runs_after, status_record
from karte_assets.resources.status import StatusPublisher
from karte_assets.settings import current_settings

RUNS_PER_TICK = 50


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def run_status_publisher(context: SensorEvaluationContext, status: StatusPublisher) -> SkipReason:
    """Publishes a status record for every finished run, success, failure or cancel, through the status resource."""
    # The cursor is the storage id of the last run-end event whose record was accepted: it only
    # moves past a run once its record is delivered, so an outage delays records, never drops them.
    cursor = int(context.cursor or 0)
    published = 0
    for storage_id, run_id, run_status in ended_runs_after(context.instance, cursor, RUNS_PER_TICK):
        run = context.instance.get_run_by_id(run_id)
        record = status_record(context.instance, run, run_status, current_settings().env)
        try:
            status.publish(record)
        except Exception as error:  # any failure to deliver: keep the cursor, retry next tick
            context.log.error(f"status of run {run_id} not delivered, will retry: {error}")
            return SkipReason(f"delivered {published} status records, then failed on run {run_id}: {error}")
        context.update_cursor(str(storage_id))
        published += 1
    return SkipReason(f"delivered {published} status records")
