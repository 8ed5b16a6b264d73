"""The resources of each environment (local, dev, prod), apart from the code location: the CLIs
(``export``, ``report``, ``clients``) and tests build them without loading the asset graph."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from dagster import EnvVar

from karte_assets.clients import LoyaltyClient, UseCaseClient, registries_of
from karte_assets.resources.event_sources import EventSources
from karte_assets.resources.model_store import LocalModelStore
from karte_assets.resources.pubsub_status import PubSubStatusPublisher
from karte_assets.resources.status import JsonLinesStatusPublisher
from karte_assets.resources.tracker import CometOfflineTracker, CometOnlineTracker
from karte_assets.resources.trainer import SubprocessTrainer
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import Settings


def local_resources(settings: Settings, clients: Iterable[UseCaseClient] = ()) -> dict[str, object]:
    """The embedded defaults: everything under $KARTE_HOME, nothing needs an account; the clients of
    each use case are ``default`` and those of ``clients`` (``client_resources``)."""
    return {
        "warehouse": DuckDBWarehouse(
            path=str(settings.warehouse_path),
            snapshot_retention_days=settings.snapshot_retention_days,
            memory_limit=settings.duckdb_memory_limit,
        ),
        "trainer": SubprocessTrainer(),
        "event_sources": EventSources(),
        "model_store": LocalModelStore(root=str(settings.home / "models")),
        **reporting_resources(settings),
        **client_resources(settings, clients),
    }


def client_resources(settings: Settings, clients: Iterable[UseCaseClient] = ()) -> dict[str, object]:
    """Each use case's registry as resource ``<use case>_clients`` (``loyalty_clients``, ...): ``default``
    and the ``clients`` of that use case's client type."""
    return {
        f"{use_case}_clients": registry for use_case, registry in registries_of(settings, clients).items()
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


def resources_for(settings: Settings, clients: Iterable[UseCaseClient] = ()) -> dict[str, object]:
    """The resources of ``settings``' environment, with each use case's clients ``default`` and
    those of ``clients``."""
    if settings.cloud is None:
        return local_resources(settings, clients)
    # Imported here: the Google Cloud clients take seconds to import, and local runs never use them.
    from karte_assets.resources.google_cloud import cloud_resources

    clients = list(clients)
    # A client's worker_pool (defs.yaml) is the Vertex AI trainer's alone: the local one has no machine.
    pools = {
        client.client_id: client.worker_pool
        for client in clients
        if isinstance(client, LoyaltyClient) and client.worker_pool
    }
    return {
        **cloud_resources(settings.cloud, settings.snapshot_retention_days, pools),
        "event_sources": EventSources(),
        **reporting_resources(settings),
        **client_resources(settings, clients),
    }
