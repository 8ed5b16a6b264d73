"""The status sensor: every finished run's record, delivered at least once through the status resource."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from karte_assets.automation.run_status import ended_runs_after, status_record, unavailable_record
from karte_assets.resources.status import StatusPublisher
from karte_assets.settings import current_settings

RUNS_PER_TICK = 50
# No new publish starts after this long, so that a tick (plus one publisher deadline) stays well
# inside the daemon's 60 s limit on a sensor evaluation.
TICK_BUDGET_SECONDS = 30.0
BACKOFF_FIRST_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 900.0


@dataclass(frozen=True)
class DeliveryCursor:
    """How far status delivery has got, and how long to wait after failed ticks; kept as the sensor's cursor."""

    after: int = 0  # storage id of the last run-end event whose record was acknowledged
    failures: int = 0  # failed ticks in a row
    retry_at: float = 0.0  # epoch seconds before which no publish is tried

    @classmethod
    def parse(cls, text: str | None) -> DeliveryCursor:
        if not text:
            return cls()
        if text.isdigit():  # the plain storage id that earlier versions of this sensor stored
            return cls(after=int(text))
        return cls(**json.loads(text))

    def serialize(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def delivered(self, storage_id: int) -> DeliveryCursor:
        return DeliveryCursor(after=storage_id)

    def failed(self, now: float) -> DeliveryCursor:
        failures = self.failures + 1
        delay = min(BACKOFF_FIRST_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
        return replace(self, failures=failures, retry_at=now + delay)


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def run_status_publisher(context: SensorEvaluationContext, status: StatusPublisher) -> SkipReason:
    """Publishes a status record for every finished run, success, failure or cancel, through the status resource."""
    # The cursor only moves past a run once the publisher has acknowledged its record, so an
    # outage delays records and never drops them; failed ticks back off exponentially, and the
    # backoff lives in the cursor too, so a restarted daemon neither re-sends nor hammers.
    cursor = DeliveryCursor.parse(context.cursor)
    now = time.time()
    if now < cursor.retry_at:
        return SkipReason(
            f"backing off after {cursor.failures} failed ticks, {cursor.retry_at - now:.0f}s left"
        )
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    delivered = 0
    for storage_id, run_id, run_status in ended_runs_after(context.instance, cursor.after, RUNS_PER_TICK):
        if time.monotonic() > deadline:
            break
        record = run_record(context, run_id, run_status)
        try:
            status.publish(record)
        except Exception as error:  # any failure to deliver: keep the cursor, back off, retry
            cursor = cursor.failed(time.time())
            context.update_cursor(cursor.serialize())
            context.log.error(
                f"status {record['idempotency_key']} not delivered ({type(error).__name__}: {error}); "
                f"failure {cursor.failures} in a row, next try in {cursor.retry_at - time.time():.0f}s"
            )
            return SkipReason(f"delivered {delivered} status records, then failed on run {run_id}")
        cursor = cursor.delivered(storage_id)
        context.update_cursor(cursor.serialize())
        delivered += 1
    return SkipReason(f"delivered {delivered} status records")


def run_record(context: SensorEvaluationContext, run_id: str, run_status: str) -> dict[str, object]:
    """The status record of a run; a minimal one if the run cannot be loaded (deleted since it
    ended, or its records unreadable), so that one bad run never holds back the ones after it."""
    environment = current_settings().env
    try:
        run = context.instance.get_run_by_id(run_id)
        if run is None:
            raise LookupError("the run no longer exists in the instance (deleted?)")
        return status_record(context.instance, run, run_status, environment)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        context.log.error(f"run {run_id} ({run_status}): sending a minimal status record, {reason}")
        return unavailable_record(run_id, run_status, environment, reason)
