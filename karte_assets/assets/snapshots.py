"""Serving snapshots of the scores: the files the lookup service (karte_assets/serving) reads."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext

from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.serving.snapshot import Anomaly, SnapshotInfo, write_snapshot


def servable_clients(warehouse: Warehouse, day: dt.date, client_ids: Sequence[str]) -> set[str]:
    """The clients of ``client_ids`` whose scores of ``day`` may be served: their model was trained
    and accepted that day, or none was due (the retrain cadence) and their newest accepted model
    scored it. A day whose model was rejected is never served, nor a day without a trainable model
    (scored by the baseline)."""
    status = warehouse.query("model_status", {"partition_date": day, "client_ids": list(client_ids)})
    return set(status.loc[status["status"].isin(["trained", "not_due"]), "client_id"])


def newest_day_until(warehouse: Warehouse, table: str, day: dt.date, client: str) -> dt.date | None:
    """The client's newest partition of ``table`` on or before ``day``, or None."""
    found = warehouse.query(
        "newest_partition_until", {"table_name": table, "partition_date": day, "client_ids": [client]}
    )["partition_date"].iloc[0]
    return None if pd.isna(found) else pd.Timestamp(found).date()


def publish_snapshot(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    model_store: ModelStore,
    day: dt.date,
    model_version: str,
    client: str,
    anomaly_use_case: bool,
) -> SnapshotInfo | None:
    """Write the client's scores of the day as a snapshot and publish it; None if the store serves a
    later day.

    Each user carries the anomaly verdict of the client's newest anomaly day on or before ``day``,
    not only of ``day`` itself: the anomaly job may finish after this one, and the day before's
    flags keep a known cheater from a coupon where the same day's would leave every flag empty.
    Beside it go the products of the client's newest demand day on or before ``day``."""
    anomaly = Anomaly(use_case=False)
    if anomaly_use_case:
        anomaly = Anomaly(True, newest_day_until(warehouse, "user_anomaly_scores", day, client))
    params = {"partition_date": day, "client_ids": [client]}
    # Before the first anomaly day, @partition_date: no anomaly partition, so every verdict is NULL.
    scores = warehouse.query_arrow(
        "serving_scores", {**params, "anomaly_date": anomaly.partition_date or day}
    )
    versions = set(scores.column("model_version").unique().to_pylist())
    if versions - {model_version}:
        raise ValueError(
            f"loyalty_scores of {client} on {day} come from the models {sorted(versions)}, "
            f"not {model_version}: the snapshot would name the wrong model"
        )
    demand_date = newest_day_until(warehouse, "overstock_candidates", day, client)
    products = None
    if demand_date is not None:
        products = warehouse.query_arrow("serving_products", {**params, "partition_date": demand_date})
    with tempfile.TemporaryDirectory(prefix="karte-snapshot-") as folder:
        path = Path(folder) / "snapshot.arrow"
        info = write_snapshot(scores, path, client, day, model_version, anomaly, products, demand_date)
        if not model_store.snapshots().publish(path, info):
            context.log.info(
                f"{day} {client}: snapshot not published, the lookup service serves a later day already"
            )
            return None
    context.log.info(
        f"{day} {client}: serving snapshot {info.sha256[:16]} of {info.users:,} users published "
        f"(anomaly day {anomaly.partition_date if anomaly.use_case else 'none: not a use case of the client'}, "
        f"demand day {demand_date}, {info.products.products if info.products else 0:,} products)"
    )
    return info


def refresh_served_snapshot(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    model_store: ModelStore,
    client: str,
    first_written: dt.date,
) -> SnapshotInfo | None:
    """Publish the client's served snapshot again after anomaly days from ``first_written`` on were
    written: the anomaly job runs after the loyalty job that published it (it reads its raw_events),
    so the served day's own verdicts land only now. None if nothing was served, the served day is
    older than those days (its verdicts are unchanged), or is no longer servable."""
    found = model_store.snapshots().latest(client)
    if found is None or found[0].partition_date < first_written:
        return None
    served = found[0]
    if client not in servable_clients(warehouse, served.partition_date, [client]):
        context.log.warning(
            f"{served.partition_date} {client}: the served snapshot's day is no longer servable, not published again"
        )
        return None
    return publish_snapshot(
        context,
        warehouse,
        model_store,
        served.partition_date,
        served.model_version,
        client,
        anomaly_use_case=True,
    )
