import datetime as dt

import pytest

from karte_assets.settings import SettingsError, load_settings


def test_defaults_need_no_variable():
    settings = load_settings({})
    assert (settings.env, settings.timezone, settings.events_source) == ("local", "Asia/Tokyo", "synthetic")
    assert settings.partitions_start == dt.date(2026, 6, 1)
    assert settings.warehouse_path.name == "warehouse.duckdb" and settings.home.name == ".karte"


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"KARTE_ENV": "staging"}, "KARTE_ENV"),
        ({"KARTE_TIMEZONE": "Mars/Olympus"}, "KARTE_TIMEZONE"),
        ({"KARTE_PARTITIONS_START": "2026-13-01"}, "KARTE_PARTITIONS_START"),
        ({"KARTE_SYNTHETIC_USERS_PER_DAY": "-5"}, "KARTE_SYNTHETIC_USERS_PER_DAY"),
        ({"KARTE_ENV": "prod"}, "KARTE_ENV=prod needs KARTE_"),
        ({"KARTE_SNAPSHOT_RETENTION_DAYS": "0"}, "KARTE_SNAPSHOT_RETENTION_DAYS"),
        ({"KARTE_SNAPSHOT_RETENTION_DAYS": "1e3"}, "KARTE_SNAPSHOT_RETENTION_DAYS"),
    ],
)
def test_a_bad_variable_fails_at_load_naming_it(variables, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(variables)


def test_a_dagster_plus_deployment_without_karte_env_fails_closed():
    with pytest.raises(SettingsError, match="KARTE_ENV is not set in Dagster\\+ deployment 'prod'"):
        load_settings({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod"})
    # Set explicitly, even to local (a branch deployment's choice), it loads.
    assert load_settings({"DAGSTER_CLOUD_DEPLOYMENT_NAME": "prod", "KARTE_ENV": "local"}).env == "local"
