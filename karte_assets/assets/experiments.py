"""How the model asset hands each training to the tracker without ever depending on it."""

from __future__ import annotations

import datetime as dt

from dagster import AssetExecutionContext

from karte_assets.resources.tracker import TrackedExperiment, Tracker, TrainingRecord
from karte_assets.resources.trainer import TrainingJob, TrainingOutcome


def training_record(
    context: AssetExecutionContext,
    day: dt.date,
    job: TrainingJob,
    outcome: TrainingOutcome,
    version: str,
    model_text: str,
) -> TrainingRecord:
    return TrainingRecord(
        name=version,
        params={
            **job.lightgbm_params,
            "num_boost_round": job.num_boost_round,
            "early_stopping_rounds": job.early_stopping_rounds,
            "horizon_days": job.horizon_days,
        },
        metrics=outcome.metrics,
        feature_importance=outcome.feature_importance,
        datasets={
            "training_data_rows": outcome.training_data["rows"],
            "training_data_sha256": outcome.training_data["sha256"],
        },
        model_text=model_text,
        tags={
            "dagster_run_id": context.run_id,
            "asset": context.asset_key.to_user_string(),
            "partition": day.isoformat(),
        },
    )


class RunTracking:
    """The tracker as one asset run uses it: a failure is a warning, and ends tracking for the rest of the run."""

    def __init__(self, context: AssetExecutionContext, tracker: Tracker):
        self._context = context
        self._tracker = tracker
        self._failed = False

    def track(self, training: TrainingRecord) -> TrackedExperiment | None:
        if self._failed:
            return None
        try:
            return self._tracker.track(training)
        except Exception as error:  # the model is published already: tracking must not undo the run
            # Stop after one failure: a tracker that is down would otherwise cost its full timeout
            # on every day of a long backfill.
            self._failed = True
            self._context.log.warning(
                f"experiment tracking failed, model {training.name} is kept but not tracked, nor are "
                f"later models of this run: {type(error).__name__}: {error}"
            )
            return None
