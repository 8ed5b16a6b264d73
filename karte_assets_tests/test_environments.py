"""dev and prod: the Google Cloud resources from the environment, and load-time errors that name
the missing variable."""

import dataclasses
import os
import subprocess
import sys

import pytest

from karte_assets.clients import LoyaltyClient
from karte_assets.definitions import resources_for
from karte_assets.resources.bigquery_warehouse import BigQueryWarehouse
from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.resources.trainer import SubprocessTrainer, TrainingJob
from karte_assets.resources.vertex_trainer import VertexTrainer
from karte_assets.settings import SettingsError, load_settings

REQUIRED = ("KARTE_GCP_PROJECT", "KARTE_BQ_EVENTS_TABLE", "KARTE_GCS_BUCKET", "KARTE_TRAINING_IMAGE")


def cloud_environ(env: str) -> dict[str, str]:
    return {
        "KARTE_ENV": env,
        "KARTE_GCP_PROJECT": f"karte-{env}",
        "KARTE_BQ_EVENTS_TABLE": "karte-data.tracking.events",
        "KARTE_GCS_BUCKET": f"karte-{env}-artifacts",
        "KARTE_TRAINING_IMAGE": f"asia-northeast1-docker.pkg.dev/karte-{env}/karte/training:abc123",
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("missing", REQUIRED)
def test_a_missing_required_variable_fails_at_load_naming_it(env, missing):
    environ = {k: v for k, v in cloud_environ(env).items() if k != missing}
    with pytest.raises(SettingsError, match=f"KARTE_ENV={env} needs {missing} to be set"):
        load_settings(environ)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KARTE_BQ_EVENTS_TABLE", "events; DROP TABLE x"),
        ("KARTE_BQ_EVENTS_TABLE", "events"),
        ("KARTE_BQ_DATASET", "a.b"),
        ("KARTE_BQ_LOCATION", "asia northeast1"),
    ],
)
def test_bigquery_names_that_are_not_plain_identifiers_fail_at_load(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({**cloud_environ("prod"), name: value})


def test_dev_and_prod_differ_in_dataset_bucket_prefix_topic_and_comet_project():
    dev, prod = (resources_for(load_settings(cloud_environ(env))) for env in ("dev", "prod"))
    for resources, env in ((dev, "dev"), (prod, "prod")):
        warehouse, trainer, store = resources["warehouse"], resources["trainer"], resources["model_store"]
        assert isinstance(warehouse, BigQueryWarehouse) and warehouse.dataset == f"karte_{env}"
        assert warehouse.bigquery.project == f"karte-{env}"
        assert warehouse.events_table == "karte-data.tracking.events"
        assert isinstance(store, GcsModelStore) and (store.bucket, store.prefix) == (
            f"karte-{env}-artifacts",
            f"karte/{env}",
        )
        assert isinstance(trainer, VertexTrainer) and trainer.region == "asia-northeast1"
        assert trainer.worker_pool.image_uri.endswith("/training:abc123")
        assert resources["status"].topic == f"karte-loyalty-status-{env}"
        assert resources["tracker"].project == f"karte-loyalty-{env}"


def test_a_clients_worker_pool_is_the_vertex_trainers_and_the_local_trainer_has_no_machine():
    big = LoyaltyClient(client_id="big", worker_pool={"machine_type": "n1-highmem-16"})
    small = LoyaltyClient(client_id="small", lightgbm={"num_leaves": 7})
    trainer = resources_for(load_settings(cloud_environ("prod")), [big, small])["trainer"]
    assert trainer.client_worker_pools == {"big": {"machine_type": "n1-highmem-16"}}
    assert trainer.training_pool("big", {}).machine_type == "n1-highmem-16"
    assert trainer.training_pool("small", {}) == trainer.worker_pool
    local = resources_for(load_settings({}), [big, small])["trainer"]
    assert isinstance(local, SubprocessTrainer) and set(type(local).model_fields) == {"python_executable"}
    assert "worker_pool" not in {field.name for field in dataclasses.fields(TrainingJob)}


def test_the_bigquery_location_and_the_snapshot_retention_reach_the_warehouse():
    warehouse = resources_for(load_settings(cloud_environ("prod")))["warehouse"]
    assert (warehouse.bigquery.location, warehouse.snapshot_retention_days) == ("asia-northeast1", 112)
    environ = {**cloud_environ("prod"), "KARTE_BQ_LOCATION": "US", "KARTE_SNAPSHOT_RETENTION_DAYS": "200"}
    warehouse = resources_for(load_settings(environ))["warehouse"]
    assert (warehouse.bigquery.location, warehouse.snapshot_retention_days) == ("US", 200)


def load_definitions(environ: dict[str, str]) -> subprocess.CompletedProcess:
    # A fresh process: the code location reads its environment once, at import, as Dagster's does.
    code = "import karte_assets.definitions as d; print(sorted(d.defs.resources))"
    env = {key: value for key, value in os.environ.items() if not key.startswith("KARTE_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**env, **environ}, capture_output=True, text=True, timeout=120
    )


def test_the_prod_code_location_loads_without_connecting_and_fails_fast_without_its_bucket(tmp_path):
    environ = {**cloud_environ("prod"), "KARTE_HOME": str(tmp_path)}
    loaded = load_definitions(environ)
    assert loaded.returncode == 0, loaded.stderr
    assert "'model_store', 'status', 'tracker', 'trainer', 'warehouse'" in loaded.stdout

    del environ["KARTE_GCS_BUCKET"]
    failed = load_definitions(environ)
    assert failed.returncode != 0
    assert "SettingsError: KARTE_ENV=prod needs KARTE_GCS_BUCKET to be set" in failed.stderr


def test_a_deployed_code_location_without_karte_env_fails_at_load_naming_it(tmp_path):
    failed = load_definitions({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", "KARTE_HOME": str(tmp_path)})
    assert failed.returncode != 0
    assert "SettingsError: KARTE_ENV is not set in Dagster+ deployment 'prod'" in failed.stderr
