"""The environment this code location runs in, read from ``KARTE_*`` variables in one place.

Nothing here connects anywhere: it only reads and validates variables, so a typo fails at load
time with a message that names the variable instead of deep inside a run.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from karte_assets.duckdb_memory import DEFAULT_MEMORY_LIMIT, memory_limit_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("local", "dev", "prod")
SYNTHETIC_SOURCE = "synthetic"
BIGQUERY_SOURCE = "bigquery"  # the existing events table KARTE_BQ_EVENTS_TABLE (dev, prod)
# The events table a warehouse may declare it can read (Warehouse.readable_event_tables).
BIGQUERY_EVENTS_TABLE = "bigquery_events_table"
# Per-day snapshots are kept this long: the default training window reads 77 days back, plus 35.
DEFAULT_SNAPSHOT_RETENTION_DAYS = 112


class SettingsError(ValueError):
    """A ``KARTE_*`` variable is missing or malformed."""


@dataclass(frozen=True)
class CloudSettings:
    """Where the graph runs on Google Cloud (``dev`` and ``prod``); credentials come from ADC."""

    project: str  # KARTE_GCP_PROJECT
    region: str  # KARTE_GCP_REGION
    bigquery_location: str  # KARTE_BQ_LOCATION, default the region: where every job runs
    bigquery_dataset: str  # KARTE_BQ_DATASET, default karte_<env>
    events_table: str  # KARTE_BQ_EVENTS_TABLE: the existing day-partitioned events table
    gcs_bucket: str  # KARTE_GCS_BUCKET
    gcs_prefix: str  # KARTE_GCS_PREFIX, default karte/<env>
    pubsub_topic: str  # KARTE_PUBSUB_TOPIC, default karte-loyalty-status-<env>
    training_image: str  # KARTE_TRAINING_IMAGE: the container image Vertex AI runs


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    events_source: str
    timezone: str
    partitions_start: dt.date
    synthetic_users_per_day: float
    comet_project: str  # KARTE_COMET_PROJECT, default karte-loyalty-<env>
    snapshot_retention_days: int  # KARTE_SNAPSHOT_RETENTION_DAYS: how long per-day snapshots are kept
    # KARTE_DUCKDB_MEMORY_LIMIT: each local DuckDB database's memory_limit (see duckdb_memory.py)
    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT
    cloud: CloudSettings | None = None  # None for local

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def uses_synthetic_events(self) -> bool:
        return self.events_source == SYNTHETIC_SOURCE


# Dagster+ sets this in every deployed code location
# (https://docs.dagster.io/deployment/dagster-plus/management/environment-variables/built-in).
DEPLOYMENT_VARIABLE = "DAGSTER_CLOUD_DEPLOYMENT_NAME"


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    if DEPLOYMENT_VARIABLE in environ and "KARTE_ENV" not in environ:
        # Fail closed: a deployed code location without KARTE_ENV would otherwise run the local
        # synthetic shop into a throwaway DuckDB and look green.
        raise SettingsError(
            f"KARTE_ENV is not set in Dagster+ deployment {environ[DEPLOYMENT_VARIABLE]!r}: "
            "set KARTE_ENV=dev or prod on the code location"
        )
    env = environ.get("KARTE_ENV", "local")
    if env not in ENVIRONMENTS:
        raise SettingsError(f"KARTE_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    timezone = environ.get("KARTE_TIMEZONE", "Asia/Tokyo")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise SettingsError(f"KARTE_TIMEZONE={timezone!r} is not a known IANA time zone") from error
    start_text = environ.get("KARTE_PARTITIONS_START", "2026-06-01")
    try:
        partitions_start = dt.date.fromisoformat(start_text)
    except ValueError as error:
        raise SettingsError(
            f"KARTE_PARTITIONS_START={start_text!r} is not a date in YYYY-MM-DD form"
        ) from error
    users_text = environ.get("KARTE_SYNTHETIC_USERS_PER_DAY", "200")
    try:
        users_per_day = float(users_text)
    except ValueError:
        users_per_day = -1.0
    if users_per_day <= 0:
        raise SettingsError(f"KARTE_SYNTHETIC_USERS_PER_DAY={users_text!r} must be a positive number")
    retention_text = environ.get("KARTE_SNAPSHOT_RETENTION_DAYS", str(DEFAULT_SNAPSHOT_RETENTION_DAYS))
    if not retention_text.isdigit() or int(retention_text) < 1:
        raise SettingsError(
            f"KARTE_SNAPSHOT_RETENTION_DAYS={retention_text!r} must be a whole number of days, at least 1"
        )
    memory_limit = environ.get("KARTE_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT)
    try:
        memory_limit_bytes(memory_limit)
    except ValueError as error:
        raise SettingsError(f"KARTE_DUCKDB_MEMORY_LIMIT: {error}") from error
    return Settings(
        env=env,
        home=Path(environ.get("KARTE_HOME", REPO_ROOT / ".karte")).resolve(),
        events_source=environ.get(
            "KARTE_EVENTS_SOURCE", SYNTHETIC_SOURCE if env == "local" else BIGQUERY_SOURCE
        ),
        timezone=timezone,
        partitions_start=partitions_start,
        synthetic_users_per_day=users_per_day,
        comet_project=environ.get("KARTE_COMET_PROJECT", f"karte-loyalty-{env}"),
        snapshot_retention_days=int(retention_text),
        duckdb_memory_limit=memory_limit,
        cloud=None if env == "local" else _cloud_settings(env, environ),
    )


def _required(environ: Mapping[str, str], name: str, env: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"KARTE_ENV={env} needs {name} to be set")
    return value


# BigQuery names reach SQL as identifiers, which cannot be query parameters: only plain ones pass.
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_LOCATION = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,62}$")  # US, EU, asia-northeast1, ...
_TABLE = re.compile(r"^([a-z][a-z0-9-]{4,28}[a-z0-9]\.)?[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_-]{1,1024}$")


def _matching(name: str, value: str, pattern: re.Pattern[str], form: str) -> str:
    if not pattern.match(value):
        raise SettingsError(f"{name}={value!r} is not {form}")
    return value


def _cloud_settings(env: str, environ: Mapping[str, str]) -> CloudSettings:
    dataset = environ.get("KARTE_BQ_DATASET", f"karte_{env}")
    events_table = _required(environ, "KARTE_BQ_EVENTS_TABLE", env)
    region = environ.get("KARTE_GCP_REGION", "asia-northeast1")
    location = environ.get("KARTE_BQ_LOCATION", region)
    return CloudSettings(
        project=_required(environ, "KARTE_GCP_PROJECT", env),
        region=region,
        bigquery_location=_matching("KARTE_BQ_LOCATION", location, _LOCATION, "a BigQuery location"),
        bigquery_dataset=_matching("KARTE_BQ_DATASET", dataset, _DATASET, "a BigQuery dataset name"),
        events_table=_matching(
            "KARTE_BQ_EVENTS_TABLE", events_table, _TABLE, "a BigQuery table, [project.]dataset.table"
        ),
        gcs_bucket=_required(environ, "KARTE_GCS_BUCKET", env),
        gcs_prefix=environ.get("KARTE_GCS_PREFIX", f"karte/{env}"),
        pubsub_topic=environ.get("KARTE_PUBSUB_TOPIC", f"karte-loyalty-status-{env}"),
        training_image=_required(environ, "KARTE_TRAINING_IMAGE", env),
    )


@functools.cache
def current_settings() -> Settings:
    """The settings of this process's environment, read once."""
    return load_settings()
