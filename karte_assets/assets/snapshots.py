"""Serving snapshots of the scores: the files the lookup service (karte_assets/serving) reads."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from dagster import AssetExecutionContext

from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.serving.snapshot import SnapshotInfo, write_snapshot

# CLIENTS.md: the single shop configured by today's KARTE_* variables.
SERVED_CLIENT = "default"


def servable_model(warehouse: Warehouse, day: dt.date) -> bool:
    """Whether ``day``'s scores may be served: its model was trained and accepted that day, or none
    was due (the retrain cadence) and the newest accepted model scored it. A day whose model was
    rejected is never served, nor a day without a trainable model (scored by the baseline)."""
    status = warehouse.query("model_status", {"partition_date": day})
    return not status.empty and status["status"].iloc[0] in ("trained", "not_due")


def publish_snapshot(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    model_store: ModelStore,
    day: dt.date,
    model_version: str,
    client: str = SERVED_CLIENT,
) -> SnapshotInfo | None:
    """Write the client's scores of the day as a snapshot and publish it; None if the store serves a
    later day. The tables have no client column yet, so every row is the one client's (CLIENTS.md:
    once they have one, both queries filter on it and loyalty_scores publishes each client of its run)."""
    scores = warehouse.query_arrow("serving_scores", {"partition_date": day})
    with tempfile.TemporaryDirectory(prefix="karte-snapshot-") as folder:
        info = write_snapshot(scores, Path(folder) / "snapshot.arrow", client, day, model_version)
        if not model_store.snapshots().publish(Path(folder) / "snapshot.arrow", info):
            context.log.info(f"{day}: snapshot not published, the lookup service serves a later day already")
            return None
    context.log.info(f"{day}: serving snapshot {info.sha256[:16]} of {info.users:,} users published")
    return info
