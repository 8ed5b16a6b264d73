"""The code location: the loyalty asset graph, its automation, and resources for the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import Definitions, EnvVar, in_process_executor

from karte_assets.assets.activity import user_daily_activity
from karte_assets.assets.anomaly import ANOMALY_ASSETS, anomaly_daily_job
from karte_assets.assets.events import raw_events
from karte_assets.assets.features import user_features
from karte_assets.assets.profile import user_profile
from karte_assets.assets.scores import loyalty_scores
from karte_assets.assets.training import loyalty_model
from karte_assets.assets.training_set import loyalty_training_set
from karte_assets.automation.schedules import daily_refresh_schedule, loyalty_daily_job
from karte_assets.automation.sensors import run_status_publisher
from karte_assets.presets import PRESET_JOBS
from karte_assets.resources.model_store import LocalModelStore
from karte_assets.resources.pubsub_status import PubSubStatusPublisher
from karte_assets.resources.status import JsonLinesStatusPublisher
from karte_assets.resources.tracker import CometOfflineTracker, CometOnlineTracker
from karte_assets.resources.trainer import SubprocessTrainer
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import Settings, current_settings

ASSETS = [
    raw_events,
    user_daily_activity,
    user_profile,
    user_features,
    loyalty_training_set,
    loyalty_model,
    loyalty_scores,
]


def local_resources(settings: Settings) -> dict[str, object]:
    """The embedded defaults: everything under $KARTE_HOME, nothing needs an account."""
    return {
        "warehouse": DuckDBWarehouse(
            path=str(settings.warehouse_path),
            snapshot_retention_days=settings.snapshot_retention_days,
            memory_limit=settings.duckdb_memory_limit,
        ),
        "trainer": SubprocessTrainer(),
        "model_store": LocalModelStore(root=str(settings.home / "models")),
        **reporting_resources(settings),
    }


def reporting_resources(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """``status`` and ``tracker``: files under $KARTE_HOME locally; Pub/Sub and Comet ML online in dev/prod."""
    if settings.cloud is None:
        return {
            "status": JsonLinesStatusPublisher(path=str(settings.home / "status.jsonl")),
            "tracker": CometOfflineTracker(
                project=settings.comet_project, directory=str(settings.home / "comet")
            ),
        }
    return {
        "status": PubSubStatusPublisher(project=settings.cloud.project, topic=settings.cloud.pubsub_topic),
        # An unset EnvVar would fail every run at launch; without a key the tracker warns instead.
        "tracker": CometOnlineTracker(
            project=settings.comet_project,
            api_key=EnvVar("COMET_API_KEY") if environ.get("COMET_API_KEY") else "",
        ),
    }


def resources_for(settings: Settings) -> dict[str, object]:
    if settings.cloud is None:
        return local_resources(settings)
    # Imported here: the Google Cloud clients take seconds to import, and local runs never use them.
    from karte_assets.resources.google_cloud import cloud_resources

    return {
        **cloud_resources(settings.cloud, settings.snapshot_retention_days),
        **reporting_resources(settings),
    }


defs = Definitions(
    assets=[*ASSETS, *ANOMALY_ASSETS],
    jobs=[loyalty_daily_job, anomaly_daily_job, *PRESET_JOBS],
    schedules=[daily_refresh_schedule],
    sensors=[run_status_publisher],
    resources=resources_for(current_settings()),
    # The work happens in the warehouse and the trainer; one process per run keeps the steps of a
    # long backfill from paying a process start each, and serialises them on the DuckDB file.
    executor=in_process_executor,
)
