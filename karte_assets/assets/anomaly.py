"""The anomaly use case: behaviour features, anomaly scores and the exclusion audience of a day.

Its own group and job (``anomaly_daily_job``); it reads the loyalty graph's ``raw_events`` and
``user_daily_activity`` (the history that bursts are measured against). A run covers the anomaly
clients of its ``karte/client`` tag, or all of them (``anomaly_clients``, registered by the
``karte_assets.AnomalyDetection`` instances), each with its own parameters; ``client_id`` is in
every table (CLIENTS.md).
"""

import datetime as dt
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    Config,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    define_asset_job,
)
from pydantic import Field, field_validator

from karte_assets.anomaly.detectors import UNSUPERVISED
from karte_assets.anomaly.scoring import ClientDay, DetectorSettings, score_client_day
from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.assets.snapshots import refresh_served_snapshot
from karte_assets.clients import ClientRegistry, grouped, run_clients
from karte_assets.export import write_files
from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings

GROUP = "anomaly"
EXCLUSION_TABLE = "anomaly_exclusion_audience"


class BehaviourFeaturesConfig(Config):
    session_gap_minutes: int = Field(
        default=30,
        ge=1,
        description="Minutes without an event after which the next event starts a new session.",
    )
    history_days: int = Field(
        default=28,
        ge=1,
        description="Days of the user's own activity before the day that bursts are measured against.",
    )


class AnomalyConfig(Config):
    detector: str = Field(
        default="isolation_forest",
        description=f"The detector without labels: one of {', '.join(UNSUPERVISED)}. With enough known "
        "cheaters in labels_file, LightGBM trained on them scores the day instead and all are compared.",
    )
    contamination: float = Field(
        default=0.01, ge=0, le=1, description="Share of the day's users flagged, the most anomalous first."
    )
    score_threshold: float | None = Field(
        default=None,
        description="Flag every user scoring at least this instead of a share (the detector's own scale: "
        "isolation_forest in (0, 1], ecod unbounded, lightgbm a probability).",
    )
    labels_file: str | None = Field(
        default=None,
        description="CSV or Parquet of known cheaters: user_id, labelled_on (date) and optionally client_id. "
        "A user labelled on or before the day counts as a cheater that day.",
    )
    n_estimators: int = Field(default=100, ge=1, description="isolation_forest: trees.")
    max_samples: int | None = Field(
        default=None,
        ge=2,
        description="isolation_forest: users per tree. By default about three of the flagged share per tree "
        "(3 / contamination, at least 256): fewer cannot rank a small share, more let the anomalous users "
        "hide each other (EVALUATION.md).",
    )
    seed: int = Field(default=0, description="Random seed of the detectors.")

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        if value not in UNSUPERVISED:
            raise ValueError(f"detector {value!r} is not one of {UNSUPERVISED}")
        return value

    def settings(self) -> DetectorSettings:
        return DetectorSettings(
            detector=self.detector,
            contamination=self.contamination,
            score_threshold=self.score_threshold,
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            seed=self.seed,
        )


def known_cheaters(path: str, client_id: str) -> pd.DataFrame:
    """The labels file: user_id and labelled_on of the client's known cheaters."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"labels_file {path!r} does not exist")
    frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file, dtype={"user_id": str})
    missing = {"user_id", "labelled_on"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"labels_file {path!r} lacks the columns {sorted(missing)} (has {list(frame.columns)})"
        )
    if "client_id" in frame.columns:
        frame = frame[frame["client_id"] == client_id]
    dates = pd.to_datetime(frame["labelled_on"], errors="coerce")
    if dates.isna().any():
        line = int(dates.isna().to_numpy().argmax())
        raise ValueError(f"labels_file {path!r}: row {line + 1} has no valid labelled_on date")
    return pd.DataFrame({"user_id": frame["user_id"].astype(str), "labelled_on": dates.dt.date})


# Deps on the loyalty graph by key (CLIENTS.md, h14's amendment: no asset imports across modules).
@daily_asset(
    group_name=GROUP, deps=[AssetKey("raw_events"), AssetKey("user_daily_activity")], kinds={"duckdb"}
)
def user_behaviour_features(
    context: AssetExecutionContext,
    config: BehaviourFeaturesConfig,
    warehouse: Warehouse,
    anomaly_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Per user active that day: event rates, timing regularity, event-type shares, session shapes, purchase value patterns and bursts against the user's own history."""
    warehouse.ensure_table("user_daily_activity_table")
    warehouse.ensure_table("user_behaviour_features_table")
    clients = run_clients(context, anomaly_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    # Clients with the same session gap and history window share one statement.
    shapes = grouped(
        clients, lambda c: (configs[c.client_id].session_gap_minutes, configs[c.client_id].history_days)
    )

    def features(day: dt.date) -> int:
        return sum(
            warehouse.replace_partition(
                "user_behaviour_features",
                day,
                "user_behaviour_features",
                {"client_ids": ids, "session_gap_seconds": minutes * 60, "days": days},
            )
            for (minutes, days), ids in shapes.items()
        )

    rows = for_each_day(context, warehouse, features)
    return MaterializeResult(metadata={**rows_metadata(rows), "clients": MetadataValue.int(len(clients))})


@daily_asset(group_name=GROUP, deps=[user_behaviour_features], kinds={"duckdb", "scikitlearn", "lightgbm"})
def user_anomaly_scores(
    context: AssetExecutionContext,
    config: AnomalyConfig,
    warehouse: Warehouse,
    model_store: ModelStore,
    anomaly_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Anomaly score (higher is more anomalous), flag and reasons of every user active that day, each client by its own detector settings; a client's served lookup snapshot is published again with them."""
    warehouse.ensure_table("user_anomaly_scores_table")
    clients = run_clients(context, anomaly_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    client_ids = list(configs)
    labels = {
        client_id: known_cheaters(own.labels_file, client_id)
        for client_id, own in configs.items()
        if own.labels_file
    }
    newest: dict[str, tuple[dt.date, ClientDay]] = {}

    def score(day: dt.date) -> int:
        features = warehouse.query(
            "user_behaviour_features_of_day", {"partition_date": day, "client_ids": client_ids}
        )
        scored = []
        for client_id, rows in features.groupby("client_id", sort=True):
            known = labels.get(client_id)
            labelled = None if known is None else set(known.loc[known["labelled_on"] <= day, "user_id"])
            result = score_client_day(
                rows.reset_index(drop=True), configs[client_id].settings(), day, labelled
            )
            newest[client_id] = (day, result)
            scored.append(result.scores)
        return warehouse.replace_partition_with_rows(
            "user_anomaly_scores",
            day,
            pd.concat(scored, ignore_index=True) if scored else _no_scores(),
            clients=client_ids,
        )

    rows = for_each_day(context, warehouse, score)
    # The lookup service's snapshots carry the newest verdicts on or before their day.
    for client_id in client_ids:
        refresh_served_snapshot(context, warehouse, model_store, client_id, min(rows))
    day = max(rows)
    by_client = {"partition_date": day, "client_ids": client_ids}
    summary = warehouse.query("anomaly_score_summary", by_client)
    detectors = pd.DataFrame(
        [
            {
                "client_id": client_id,
                "detector": result.detector,
                "model_version": str(result.scores["model_version"].iloc[0]),
                "labels": result.note,
            }
            for client_id, (scored_day, result) in sorted(newest.items())
            if scored_day == day
        ]
    )
    metadata = {
        **rows_metadata(rows),
        "clients": MetadataValue.int(len(clients)),
        "per_client": MetadataValue.md(markdown_table(summary) if len(summary) else "no users that day"),
        "detectors": MetadataValue.md(markdown_table(detectors) if len(detectors) else "no users that day"),
        "preview": MetadataValue.md(
            markdown_table(warehouse.query("anomaly_top_scores", {**by_client, "limit": 10}))
        ),
    }
    compared = [
        result.comparison.assign(client_id=client_id)
        for client_id, (scored_day, result) in sorted(newest.items())
        if scored_day == day and len(result.comparison)
    ]
    if compared:
        metadata["detectors_against_labels"] = MetadataValue.md(markdown_table(pd.concat(compared)))
    return MaterializeResult(metadata=metadata)


def _no_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": pd.Series(dtype=str),
            "user_id": pd.Series(dtype=str),
            "anomaly_score": pd.Series(dtype=float),
            "flagged": pd.Series(dtype=bool),
            "reasons": pd.Series(dtype=str),
            "model_version": pd.Series(dtype=str),
        }
    )


class ExclusionConfig(Config):
    directory: str | None = Field(
        default=None,
        description="Where the day's Parquet and CSV files go; unset: $KARTE_HOME/exports locally, "
        "no files in dev and prod (the table is the hand-over there).",
    )


@daily_asset(group_name=GROUP, deps=[user_anomaly_scores], kinds={"duckdb"})
def anomaly_exclusion_audience(
    context: AssetExecutionContext,
    config: ExclusionConfig,
    warehouse: Warehouse,
    anomaly_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """The users flagged that day, for the ad and coupon systems to leave out; locally also as Parquet and CSV files per client."""
    settings = current_settings()
    local = str(settings.home / "exports") if settings.cloud is None else None
    clients = run_clients(context, anomaly_clients)
    directories = {client.client_id: client.config(config).directory or local for client in clients}
    client_ids = list(directories)
    files: list[str] = []

    def export(day: dt.date) -> int:
        rows = warehouse.replace_partition(EXCLUSION_TABLE, day, EXCLUSION_TABLE, {"client_ids": client_ids})
        for client_id, directory in directories.items():
            if directory is not None:
                audience = warehouse.query_arrow(
                    EXCLUSION_TABLE, {"partition_date": day, "client_ids": [client_id]}
                )
                written = write_files(
                    audience, day, Path(directory), client_id=client_id, name=EXCLUSION_TABLE
                )
                files.extend(map(str, written))
        return rows

    rows = for_each_day(context, warehouse, export)
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "clients": MetadataValue.int(len(clients)),
            "files": MetadataValue.json(files[-2 * len(clients) :]) if files else MetadataValue.text(""),
        }
    )


ANOMALY_ASSETS = [user_behaviour_features, user_anomaly_scores, anomaly_exclusion_audience]

anomaly_daily_job = define_asset_job(
    "anomaly_daily_job",
    selection=AssetSelection.groups(GROUP),
    description="Behaviour features, anomaly scores and the exclusion audience for one day (or a range, as one run).",
)
