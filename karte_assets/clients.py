"""Client shops: who the shared graph of a use case runs for, and with which parameters.

One graph per use case serves every client (never a copy per client): each table has a
``client_id`` column, and a run covers the clients named by its ``karte/client`` tag, or all of
them. A client's parameters are its defs.yaml attributes (``karte_assets.LoyaltyScoring``); run
config that differs from a field's default overrides them for the clients of that run.

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
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from karte_assets.settings import Settings

CLIENT_TAG = "karte/client"
DEFAULT_CLIENT = "default"
LOYALTY = "loyalty"
CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

C = TypeVar("C", bound=Config)


def checked_client_id(value: str, where: str = "client_id") -> str:
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise ValueError(
            f"{where} {value!r} is not a client id: lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit, at most 63 characters"
        )
    return value


class LoyaltyClient(BaseModel):
    """One client shop of the loyalty use case. Unset knobs keep the graph's defaults (KARTE_*)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(description="The shop's id: the client_id of its rows in every table.")
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
        description="Vertex AI only: worker pool overrides (machine_type, accelerator_type, ...).",
    )

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return checked_client_id(value)

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

        unknown = sorted(set(value) - set(ModelConfig.model_fields) - {"worker_pool"})
        if unknown or "worker_pool" in value:
            raise ValueError(
                f"lightgbm has unknown fields {unknown or ['worker_pool']}: known are "
                f"{sorted(set(ModelConfig.model_fields) - {'worker_pool'})} (worker_pool is its own attribute)"
            )
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

    def knobs(self) -> dict[str, object]:
        """The client's set values by the asset config field they stand for."""
        values = {
            "source": self.events_source,
            "synthetic_new_users_per_day": self.synthetic_users_per_day,
            "synthetic_seed": self.synthetic_seed,
            "horizon_days": self.horizon_days,
            "snapshot_every_days": self.snapshot_every_days,
            "max_snapshots": self.max_snapshots,
            "min_history_days": self.min_history_days,
            "retrain_every_days": self.retrain_every_days,
            "tier_a_share": self.tier_a_share,
            "tier_b_share": self.tier_b_share,
            **self.lightgbm,
            "worker_pool": self.worker_pool or None,
        }
        return {key: value for key, value in values.items() if value is not None}

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

    def zone(self, settings: Settings) -> str:
        return self.timezone or settings.timezone

    def start(self, settings: Settings) -> dt.date:
        return dt.date.fromisoformat(self.first_day) if self.first_day else settings.partitions_start


class ClientRegistry:
    """The clients of one use case (a Dagster resource: ``loyalty_clients``), ``default`` first."""

    def __init__(self, use_case: str, clients: Iterable[LoyaltyClient], settings: Settings):
        self.use_case = use_case
        self.settings = settings
        self._clients: dict[str, LoyaltyClient] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"{use_case}: client {client.client_id!r} is defined twice")
            if client.start(settings) < settings.partitions_start:
                raise ValueError(
                    f"{use_case} client {client.client_id}: first_day {client.first_day} is before "
                    f"KARTE_PARTITIONS_START {settings.partitions_start}"
                )
            self._clients[client.client_id] = client

    def ids(self) -> list[str]:
        return list(self._clients)

    def get(self, client_id: str) -> LoyaltyClient:
        try:
            return self._clients[client_id]
        except KeyError:
            raise Failure(
                f"no {self.use_case} client {client_id!r} (tag {CLIENT_TAG}); known: {', '.join(self._clients)}"
            ) from None

    def for_run(self, tags: dict[str, str]) -> list[LoyaltyClient]:
        """The run's clients: the one its ``karte/client`` tag names, or all of them."""
        chosen = tags.get(CLIENT_TAG)
        return [self.get(chosen)] if chosen else list(self._clients.values())


def default_registry(settings: Settings, clients: Iterable[LoyaltyClient] = ()) -> ClientRegistry:
    """``default`` (today's KARTE_* shop, every knob unset) and the given clients."""
    listed = list(clients)
    if not any(client.client_id == DEFAULT_CLIENT for client in listed):
        listed.insert(0, LoyaltyClient(client_id=DEFAULT_CLIENT))
    return ClientRegistry(LOYALTY, listed, settings)


def run_clients(context: AssetExecutionContext, registry: ClientRegistry) -> list[LoyaltyClient]:
    return registry.for_run(context.run.tags)


K = TypeVar("K", bound=Hashable)


def grouped(clients: Sequence[LoyaltyClient], key: Callable[[LoyaltyClient], K]) -> dict[K, list[str]]:
    """Client ids by ``key``: clients with equal parameters share one warehouse statement."""
    groups: dict[K, list[str]] = {}
    for client in clients:
        groups.setdefault(key(client), []).append(client.client_id)
    return groups


def registered_clients(settings: Settings) -> ClientRegistry:
    """The loyalty clients the code location runs: ``default`` and the client of each instance of
    the defs folder (read alone, without the asset graph)."""
    from dagster import load_from_defs_folder

    from karte_assets.components.loyalty_scoring import clients_of

    instances = load_from_defs_folder(path_within_project=Path(__file__).parent)
    return default_registry(settings, clients_of(instances))


def main() -> None:
    from karte_assets.settings import current_settings

    registry = registered_clients(current_settings())
    listing = {
        registry.use_case: {
            client_id: registry.get(client_id).model_dump(mode="json", exclude_defaults=True)
            for client_id in registry.ids()
        }
    }
    print(json.dumps(listing, indent=2))


if __name__ == "__main__":
    main()
