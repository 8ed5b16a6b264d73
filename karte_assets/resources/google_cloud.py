"""The resources of ``dev`` and ``prod``: BigQuery, Vertex AI and Cloud Storage in one project.

Credentials are Application Default Credentials everywhere (the workload's service account on
Google Cloud, ``gcloud auth application-default login`` or GOOGLE_APPLICATION_CREDENTIALS
elsewhere); nothing here connects: clients are built when a run uses them.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster_gcp import BigQueryResource, GCSResource

from karte_assets.resources.bigquery_warehouse import BigQueryWarehouse
from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.resources.vertex_trainer import DEFAULT_POOL, VertexTrainer
from karte_assets.settings import CloudSettings


def cloud_resources(
    cloud: CloudSettings, snapshot_retention_days: int, client_worker_pools: Mapping[str, Mapping]
) -> dict[str, object]:
    """``warehouse``, ``trainer`` and ``model_store`` on Google Cloud; the trainer runs the clients
    of ``client_worker_pools`` on their own machines (client id -> worker pool fields)."""
    gcs = GCSResource(project=cloud.project)
    return {
        "warehouse": BigQueryWarehouse(
            bigquery=BigQueryResource(project=cloud.project, location=cloud.bigquery_location),
            dataset=cloud.bigquery_dataset,
            events_table=cloud.events_table,
            snapshot_retention_days=snapshot_retention_days,
        ),
        "trainer": VertexTrainer(
            project=cloud.project,
            region=cloud.region,
            bucket=cloud.gcs_bucket,
            prefix=cloud.gcs_prefix,
            worker_pool=DEFAULT_POOL.with_overrides({"image_uri": cloud.training_image}),
            client_worker_pools={client_id: dict(pool) for client_id, pool in client_worker_pools.items()},
            gcs=gcs,
        ),
        "model_store": GcsModelStore(bucket=cloud.gcs_bucket, prefix=cloud.gcs_prefix, gcs=gcs),
    }
