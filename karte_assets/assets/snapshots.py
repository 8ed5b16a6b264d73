"""Serving snapshots of the scores: the files the lookup service (karte_assets/serving) reads."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dagster import AssetExecutionContext

from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.serving.snapshot import SnapshotInfo, write_snapshot


def servable_clients(warehouse: Warehouse, day: dt.date, client_ids: Sequence[str]) -> set[str]:
    """The clients of ``client_ids`` whose scores of ``day`` may be served: their model was trained
    and accepted that day, or none was due (the retrain cadence) and their newest accepted model
    scored it. A day whose model was rejected is never served, nor a day without a trainable model
    (scored by the baseline)."""
    status = warehouse.query("model_status", {"partition_date": day, "client_ids": list(client_ids)})
    return set(status.loc[status["status"].isin(["trained", "not_due"]), "client_id"])


def publish_snapshot(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    model_store: ModelStore,
    day: dt.date,
    model_version: str,
    client: str,
) -> SnapshotInfo | None:
    """Write the client's scores of the day as a snapshot and publish it; None if the store serves a
    later day."""
    scores = warehouse.query_arrow("serving_scores", {"partition_date": day, "client_ids": [client]})
    with tempfile.TemporaryDirectory(prefix="karte-snapshot-") as folder:
        info = write_snapshot(scores, Path(folder) / "snapshot.arrow", client, day, model_version)
        if not model_store.snapshots().publish(Path(folder) / "snapshot.arrow", info):
            context.log.info(
                f"{day} {client}: snapshot not published, the lookup service serves a later day already"
            )
            return None
    context.log.info(f"{day} {client}: serving snapshot {info.sha256[:16]} of {info.users:,} users published")
    return info
