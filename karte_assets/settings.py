"""The environment this code location runs in, read from ``KARTE_*`` variables in one place.

Nothing here connects anywhere: it only reads and validates variables, so a typo fails at load
time with a message that names the variable instead of deep inside a run.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("local", "dev", "prod")
SYNTHETIC_SOURCE = "synthetic"


class SettingsError(ValueError):
    """A ``KARTE_*`` variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    events_source: str
    timezone: str
    partitions_start: dt.date
    synthetic_users_per_day: float

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def uses_synthetic_events(self) -> bool:
        return self.events_source == SYNTHETIC_SOURCE


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    env = environ.get("KARTE_ENV", "local")
    if env not in ENVIRONMENTS:
        raise SettingsError(f"KARTE_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    if env != "local":
        raise SettingsError(
            f"KARTE_ENV={env!r}: the Google Cloud resources are not part of this code location yet; "
            "use KARTE_ENV=local"
        )
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
    return Settings(
        env=env,
        home=Path(environ.get("KARTE_HOME", REPO_ROOT / ".karte")).resolve(),
        events_source=environ.get("KARTE_EVENTS_SOURCE", SYNTHETIC_SOURCE),
        timezone=timezone,
        partitions_start=partitions_start,
        synthetic_users_per_day=users_per_day,
    )


@functools.cache
def current_settings() -> Settings:
    """The settings of this process's environment, read once."""
    return load_settings()
