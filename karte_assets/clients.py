"""Client shops: who the shared graph of a use case runs for, and with which parameters.

One graph per use case serves every client (never a copy per client): each table has a
``client_id`` column, and a run covers the clients named by its ``karte/client`` tag, or all of
them. A client's parameters are its defs.yaml attributes (``karte_assets.LoyaltyScoring``,
``karte_assets.AnomalyDetection``, ``karte_assets.DemandForecast``); run config that differs from a field's default overrides them
for the clients of that run.

``python -m karte_assets.clients`` prints the registered clients as JSON (for remote callers).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster import AssetExecutionContext, Config, Failure
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from karte_assets.settings import Settings

CLIENT_TAG = "karte/client"
DEFAULT_CLIENT = "default"
LOYALTY = "loyalty"
ANOMALY = "anomaly"
DEMAND = "demand"
CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

C = TypeVar("C", bound=Config)


def checked_client_id(value: str, where: str = "client_id") -> str:
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise ValueError(
            f"{where} {value!r} is not a client id: lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit, at most 63 characters"
        )
    return value


def checked_column(value: str, where: str) -> str:
    if not COLUMN_NAME.match(value):
        raise ValueError(f"{where} {value!r} is not a column name (letters, digits, _)")
    return value


def known_keys(where: str, value: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """``value`` when each of its keys is ``known``; else an error naming ``where`` and the known keys."""
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{where} has unknown fields {unknown}: known are {sorted(known)}")
    return value


class UseCaseClient(BaseModel):
    """One client shop of a use case: its id and knobs (the subclasses), each unset knob keeping the
    graph's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(description="The shop's id: the client_id of its rows in every table.")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return checked_client_id(value)

    def knobs(self) -> dict[str, object]:
        """The client's set values by the asset config field they stand for (unset ones left out)."""
        return {key: value for key, value in self.config_values().items() if value is not None}

    def config_values(self) -> dict[str, object]:
        """Every knob by the asset config field it stands for, None where unset."""
        raise NotImplementedError

    def config(self, run_config: C) -> C:
        """The asset config for this client: its own values, then whatever the run set otherwise
        than the field's default (the launchpad overrides every client of the run)."""
        kind = type(run_config)
        overrides = {
            name: getattr(run_config, name)
            for name, field in kind.model_fields.items()
            if getattr(run_config, name) != field.get_default(call_default_factory=True)
        }
        own = {key: value for key, value in self.knobs().items() if key in kind.model_fields}
        try:
            return kind(**{**own, **overrides})
        except ValueError as error:
            raise Failure(
                f"client {self.client_id}: its parameters with this run's config: {error}"
            ) from error

    def start(self, settings: Settings) -> dt.date:
        """The client's first day of history."""
        return settings.partitions_start


class LoyaltyClient(UseCaseClient):
    """One client shop of the loyalty use case. Unset knobs keep the graph's defaults (KARTE_*)."""

    events_source: str | None = Field(
        default=None,
        description='"synthetic", a Parquet/CSV path or glob of the shop\'s event files, or "bigquery". '
        "Unset: KARTE_EVENTS_SOURCE.",
    )
    synthetic_users_per_day: float | None = Field(
        default=None, gt=0, description="Synthetic shop only: users arriving per day on average."
    )
    synthetic_seed: int | None = Field(default=None, description="Synthetic shop only: the random seed.")
    timezone: str | None = Field(
        default=None, description="IANA time zone of the shop's days. Unset: KARTE_TIMEZONE."
    )
    first_day: str | None = Field(
        default=None,
        description="The shop's first day of history, YYYY-MM-DD (not before KARTE_PARTITIONS_START). "
        "Unset: that day.",
    )
    audience_days: int | None = Field(
        default=None,
        ge=1,
        description="Features, training and scores for the users seen in the last this many days only "
        "(user_features' audience_days). Unset: every user ever seen.",
    )
    horizon_days: int | None = Field(default=None, ge=1, description="Label horizon of the training set.")
    snapshot_every_days: int | None = Field(default=None, ge=1, description="Days between snapshots.")
    max_snapshots: int | None = Field(default=None, ge=2, description="Most labelled snapshots.")
    min_history_days: int | None = Field(
        default=None, ge=0, description="No snapshot earlier than this many days after the first day."
    )
    lightgbm: dict[str, Any] = Field(
        default_factory=dict,
        description="LightGBM and acceptance parameters (loyalty_model config fields, e.g. num_leaves, "
        "learning_rate, min_validation_auc).",
    )
    retrain_every_days: int | None = Field(
        default=None,
        ge=1,
        description="Train a new model once the last one is this many days old; the days between are "
        "scored with the newest accepted model. Unset: loyalty_model's retrain_every_days.",
    )
    tier_a_share: float | None = Field(default=None, ge=0, le=1, description="Share of users in tier A.")
    tier_b_share: float | None = Field(default=None, ge=0, le=1, description="Share of users in tier B.")
    worker_pool: dict[str, Any] = Field(
        default_factory=dict,
        description="Vertex AI only: the fields of the trainer's worker pool this shop's training jobs "
        "override (machine_type, accelerator_type, accelerator_count for LightGBM's GPU learner, ...).",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise ValueError(f"timezone {value!r} is not a known IANA time zone") from error
        return value

    @field_validator("first_day")
    @classmethod
    def _first_day(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError as error:
                raise ValueError(f"first_day {value!r} is not a date in YYYY-MM-DD form") from error
        return value

    @field_validator("lightgbm")
    @classmethod
    def _lightgbm(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Imported here: the asset modules import this one.
        from karte_assets.assets.training import ModelConfig

        try:
            known_keys("lightgbm", value, set(ModelConfig.model_fields))
        except ValueError as error:
            raise ValueError(f"{error} (the machine, GPU included, is the worker_pool attribute)") from None
        ModelConfig(**value)
        return value

    @field_validator("worker_pool")
    @classmethod
    def _worker_pool(cls, value: dict[str, Any]) -> dict[str, Any]:
        from karte_assets.resources.worker_pool import WorkerPool

        WorkerPool().with_overrides(value)
        return value

    @model_validator(mode="after")
    def _shares(self) -> LoyaltyClient:
        if (self.tier_a_share or 0) + (self.tier_b_share or 0) > 1:
            raise ValueError(
                f"tier_a_share + tier_b_share = {(self.tier_a_share or 0) + (self.tier_b_share or 0):.2f} "
                "is over 100 % of the audience"
            )
        return self

    def config_values(self) -> dict[str, object]:
        return {
            "source": self.events_source,
            "synthetic_new_users_per_day": self.synthetic_users_per_day,
            "synthetic_seed": self.synthetic_seed,
            "audience_days": self.audience_days,
            "horizon_days": self.horizon_days,
            "snapshot_every_days": self.snapshot_every_days,
            "max_snapshots": self.max_snapshots,
            "min_history_days": self.min_history_days,
            "retrain_every_days": self.retrain_every_days,
            "tier_a_share": self.tier_a_share,
            "tier_b_share": self.tier_b_share,
            **self.lightgbm,
        }

    def zone(self, settings: Settings) -> str:
        return self.timezone or settings.timezone

    def start(self, settings: Settings) -> dt.date:
        return dt.date.fromisoformat(self.first_day) if self.first_day else settings.partitions_start


class AnomalyClient(UseCaseClient):
    """One client shop of the anomaly use case. Unset knobs keep the anomaly assets' config defaults."""

    detector: str | None = Field(
        default=None, description='The detector without labels: "isolation_forest" (default) or "ecod".'
    )
    contamination: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of the day's users flagged, the most anomalous first (0.01).",
    )
    score_threshold: float | None = Field(
        default=None, description="Flag every user scoring at least this instead of a share."
    )
    labels_file: str | None = Field(
        default=None,
        description="CSV or Parquet of the shop's known cheaters (user_id, labelled_on): with enough of them, "
        "LightGBM trained on them scores the day and every detector is compared against them.",
    )
    max_samples: int | None = Field(
        default=None, ge=2, description="isolation_forest: users per tree. Unset: from the flagged share."
    )
    session_gap_minutes: int | None = Field(
        default=None, ge=1, description="Minutes without an event that end a session (30)."
    )
    history_days: int | None = Field(
        default=None,
        ge=1,
        description="Days of the user's own activity that bursts are measured against (28).",
    )
    exclusion_directory: str | None = Field(
        default=None,
        description="Where the day's exclusion audience files (Parquet, CSV) go. Unset: $KARTE_HOME/exports "
        "locally, no files in dev and prod (the table is the hand-over there).",
    )

    @field_validator("detector")
    @classmethod
    def _detector(cls, value: str | None) -> str | None:
        # Imported here: the detectors bring scikit-learn and LightGBM, which listing clients does not need.
        from karte_assets.anomaly.detectors import UNSUPERVISED

        if value is not None and value not in UNSUPERVISED:
            raise ValueError(f"detector {value!r} is not one of {UNSUPERVISED}")
        return value

    def config_values(self) -> dict[str, object]:
        return {
            "detector": self.detector,
            "contamination": self.contamination,
            "score_threshold": self.score_threshold,
            "labels_file": self.labels_file,
            "max_samples": self.max_samples,
            "session_gap_minutes": self.session_gap_minutes,
            "history_days": self.history_days,
            "directory": self.exclusion_directory,
        }


class DemandClient(UseCaseClient):
    """One client shop of the demand use case. Unset knobs keep the demand assets' config defaults."""

    product_column: str | None = Field(
        default=None, description="The purchase events' extra column that names the product (product_id)."
    )
    quantity_column: str | None = Field(
        default=None, description="The extra column with the units bought. Unset: each purchase counts 1."
    )
    horizon_days: int | None = Field(
        default=None, ge=1, le=366, description="Days forecast after each day (28)."
    )
    history_days: int | None = Field(
        default=None, ge=28, description="Days of sales the forecasters learn from (365)."
    )
    backtest_windows: int | None = Field(
        default=None, ge=1, description="Rolling origins of the backtest that chooses the forecaster (2)."
    )
    reselect_every_days: int | None = Field(
        default=None, ge=1, description="Days a forecaster choice stands before the backtest runs again (7)."
    )
    lightgbm: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of the LightGBM forecaster over its defaults (n_estimators, learning_rate, "
        "num_leaves, ...).",
    )
    inventory_source: str | None = Field(
        default=None,
        description="The shop's stock: a CSV or Parquet file (product_id, stock_on_hand, as_of_date), or "
        '"synthetic" (the default) for the simulated shop\'s.',
    )
    inventory_seed: int | None = Field(default=None, description="Synthetic stock only: the random seed.")

    @field_validator("product_column", "quantity_column")
    @classmethod
    def _column(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value if value is None else checked_column(value, info.field_name)

    @field_validator("lightgbm")
    @classmethod
    def _lightgbm(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Imported here: the forecasters bring pandas and numpy, which listing clients does not need.
        from karte_assets.demand.forecasters import LightGBMForecaster

        return known_keys("lightgbm", value, set(LightGBMForecaster().params))

    @field_validator("inventory_source")
    @classmethod
    def _inventory(cls, value: str | None) -> str | None:
        if value not in (None, "synthetic") and Path(value).suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f'inventory_source {value!r} is not "synthetic" or a .csv or .parquet file')
        return value

    def config_values(self) -> dict[str, object]:
        return {
            "product_column": self.product_column,
            "quantity_column": self.quantity_column,
            "horizon_days": self.horizon_days,
            "history_days": self.history_days,
            "backtest_windows": self.backtest_windows,
            "reselect_every_days": self.reselect_every_days,
            "lightgbm": self.lightgbm or None,
            "inventory_source": self.inventory_source,
            "inventory_seed": self.inventory_seed,
        }


# Each use case's client type: what its component's attributes are.
CLIENT_TYPES: dict[str, type[UseCaseClient]] = {
    LOYALTY: LoyaltyClient,
    ANOMALY: AnomalyClient,
    DEMAND: DemandClient,
}


class ClientRegistry:
    """The clients of one use case (a Dagster resource: ``<use case>_clients``), ``default`` first."""

    def __init__(self, use_case: str, clients: Iterable[UseCaseClient], settings: Settings):
        self.use_case = use_case
        self.settings = settings
        self._clients: dict[str, UseCaseClient] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"{use_case}: client {client.client_id!r} is defined twice")
            if client.start(settings) < settings.partitions_start:
                raise ValueError(
                    f"{use_case} client {client.client_id}: first_day {client.start(settings)} is before "
                    f"KARTE_PARTITIONS_START {settings.partitions_start}"
                )
            self._clients[client.client_id] = client

    def ids(self) -> list[str]:
        return list(self._clients)

    def get(self, client_id: str) -> UseCaseClient:
        try:
            return self._clients[client_id]
        except KeyError:
            raise Failure(
                f"no {self.use_case} client {client_id!r} (tag {CLIENT_TAG}); known: {', '.join(self._clients)}"
            ) from None

    def for_run(self, tags: dict[str, str]) -> list[UseCaseClient]:
        """The run's clients: the one its ``karte/client`` tag names, or all of them."""
        chosen = tags.get(CLIENT_TAG)
        return [self.get(chosen)] if chosen else list(self._clients.values())


def default_registry(
    settings: Settings, clients: Iterable[UseCaseClient] = (), use_case: str = LOYALTY
) -> ClientRegistry:
    """``default`` (today's KARTE_* shop, every knob unset) and the given clients of ``use_case``."""
    listed = list(clients)
    if not any(client.client_id == DEFAULT_CLIENT for client in listed):
        listed.insert(0, CLIENT_TYPES[use_case](client_id=DEFAULT_CLIENT))
    return ClientRegistry(use_case, listed, settings)


def run_clients(context: AssetExecutionContext, registry: ClientRegistry) -> list[UseCaseClient]:
    return registry.for_run(context.run.tags)


K = TypeVar("K", bound=Hashable)


def grouped(clients: Sequence[UseCaseClient], key: Callable[[UseCaseClient], K]) -> dict[K, list[str]]:
    """Client ids by ``key``: clients with equal parameters share one warehouse statement."""
    groups: dict[K, list[str]] = {}
    for client in clients:
        groups.setdefault(key(client), []).append(client.client_id)
    return groups


def registries_of(settings: Settings, clients: Iterable[UseCaseClient] = ()) -> dict[str, ClientRegistry]:
    """Each use case's registry: ``default`` and those of ``clients`` of its client type."""
    listed = list(clients)
    return {
        use_case: default_registry(settings, [c for c in listed if isinstance(c, kind)], use_case)
        for use_case, kind in CLIENT_TYPES.items()
    }


def registered_clients(settings: Settings, use_case: str = LOYALTY) -> ClientRegistry:
    """The clients of ``use_case`` the code location runs: ``default`` and the client of each of its
    instances in the defs folder (read alone, without the asset graph)."""
    return registries(settings)[use_case]


def registries(settings: Settings) -> dict[str, ClientRegistry]:
    """Every use case's registered clients, from one read of the defs folder."""
    from dagster import load_from_defs_folder

    from karte_assets.components.instances import clients_of

    return registries_of(
        settings, clients_of(load_from_defs_folder(path_within_project=Path(__file__).parent))
    )


def main() -> None:
    from karte_assets.settings import current_settings

    listing = {
        use_case: {
            client_id: registry.get(client_id).model_dump(mode="json", exclude_defaults=True)
            for client_id in registry.ids()
        }
        for use_case, registry in registries(current_settings()).items()
    }
    print(json.dumps(listing, indent=2))


if __name__ == "__main__":
    main()
