"""The anomaly use case: behaviour features, anomaly scores and the exclusion audience of a day.

Its own group and job (``anomaly_daily_job``); it reads the loyalty graph's ``raw_events`` and
``user_daily_activity`` (the history that bursts are measured against) and writes one client's
rows per run, ``client_id`` in every table (CLIENTS.md).
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
    define_asset_job,
)
from pydantic import Field, field_validator

from karte_assets.anomaly.detectors import UNSUPERVISED
from karte_assets.anomaly.scoring import DetectorSettings, score_client_day
from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.clients import DEFAULT_CLIENT, checked_client_id
from karte_assets.export import write_files
from karte_assets.resources.warehouse import Warehouse
from karte_assets.settings import current_settings

GROUP = "anomaly"
EXCLUSION_TABLE = "anomaly_exclusion_audience"


def _client_id(value: str) -> str:
    return checked_client_id(value)


class BehaviourFeaturesConfig(Config):
    client_id: str = Field(default=DEFAULT_CLIENT, description="The client whose events these are.")
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

    _check_client = field_validator("client_id")(_client_id)


class AnomalyConfig(Config):
    client_id: str = Field(default=DEFAULT_CLIENT, description="The client whose users are scored.")
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
    max_samples: int = Field(
        default=4096,
        ge=2,
        description="isolation_forest: users per tree. The paper's 256 drowns 0.1 % of cheaters among 100k users "
        "(precision 0.29 in bench/anomaly.py, 0.98 at 4096).",
    )
    seed: int = Field(default=0, description="Random seed of the detectors.")

    _check_client = field_validator("client_id")(_client_id)

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
    context: AssetExecutionContext, config: BehaviourFeaturesConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Per user active that day: event rates, timing regularity, event-type shares, session shapes, purchase value patterns and bursts against the user's own history."""
    warehouse.ensure_table("user_daily_activity_table")
    warehouse.ensure_table("user_behaviour_features_table")
    params = {
        "client_ids": [config.client_id],
        "session_gap_seconds": config.session_gap_minutes * 60,
        "days": config.history_days,
    }
    rows = for_each_day(
        context,
        warehouse,
        lambda day: warehouse.replace_partition(
            "user_behaviour_features", day, "user_behaviour_features", params
        ),
    )
    return MaterializeResult(
        metadata={**rows_metadata(rows), "client_id": MetadataValue.text(config.client_id)}
    )


@daily_asset(group_name=GROUP, deps=[user_behaviour_features], kinds={"duckdb", "scikitlearn", "lightgbm"})
def user_anomaly_scores(
    context: AssetExecutionContext, config: AnomalyConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Anomaly score (higher is more anomalous), flag and reasons of every user active that day, per client."""
    warehouse.ensure_table("user_anomaly_scores_table")
    settings = config.settings()
    labels = known_cheaters(config.labels_file, config.client_id) if config.labels_file else None
    newest: dict[str, object] = {}
    client = {"client_ids": [config.client_id]}

    def score(day: dt.date) -> int:
        features = warehouse.query("user_behaviour_features_of_day", {"partition_date": day, **client})
        if features.empty:
            return warehouse.replace_partition_with_rows(
                "user_anomaly_scores", day, _no_scores(), clients=client["client_ids"]
            )
        labelled = None if labels is None else set(labels.loc[labels["labelled_on"] <= day, "user_id"])
        result = score_client_day(features, settings, day, labelled)
        newest.update(day=day, result=result)
        return warehouse.replace_partition_with_rows(
            "user_anomaly_scores", day, result.scores, clients=client["client_ids"]
        )

    rows = for_each_day(context, warehouse, score)
    day = max(rows)
    summary = warehouse.query("anomaly_score_summary", {"partition_date": day, **client})
    metadata = {
        **rows_metadata(rows),
        "per_client": MetadataValue.md(markdown_table(summary) if len(summary) else "no users that day"),
        "preview": MetadataValue.md(
            markdown_table(
                warehouse.query("anomaly_top_scores", {"partition_date": day, "limit": 10, **client})
            )
        ),
    }
    if newest.get("day") == day:
        result = newest["result"]
        metadata["detector"] = MetadataValue.text(result.detector)
        metadata["model_version"] = MetadataValue.text(str(result.scores["model_version"].iloc[0]))
        metadata["labels"] = MetadataValue.text(result.note)
        if len(result.comparison):
            metadata["detectors_against_labels"] = MetadataValue.md(markdown_table(result.comparison))
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
    client_id: str = Field(default=DEFAULT_CLIENT, description="The client whose flagged users these are.")
    directory: str | None = Field(
        default=None,
        description="Where the day's Parquet and CSV files go; unset: $KARTE_HOME/exports locally, "
        "no files in dev and prod (the table is the hand-over there).",
    )

    _check_client = field_validator("client_id")(_client_id)


@daily_asset(group_name=GROUP, deps=[user_anomaly_scores], kinds={"duckdb"})
def anomaly_exclusion_audience(
    context: AssetExecutionContext, config: ExclusionConfig, warehouse: Warehouse
) -> MaterializeResult:
    """The users flagged that day, for the ad and coupon systems to leave out; locally also as Parquet and CSV files."""
    settings = current_settings()
    directory = config.directory or (str(settings.home / "exports") if settings.cloud is None else None)
    files: list[str] = []
    client = {"client_ids": [config.client_id]}

    def export(day: dt.date) -> int:
        rows = warehouse.replace_partition(EXCLUSION_TABLE, day, EXCLUSION_TABLE, client)
        if directory is not None:
            audience = warehouse.query_arrow(EXCLUSION_TABLE, {"partition_date": day, **client})
            written = write_files(
                audience, day, Path(directory), client_id=config.client_id, name=EXCLUSION_TABLE
            )
            files.extend(map(str, written))
        return rows

    rows = for_each_day(context, warehouse, export)
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "files": MetadataValue.json(files[-2:]) if files else MetadataValue.text(""),
        }
    )


ANOMALY_ASSETS = [user_behaviour_features, user_anomaly_scores, anomaly_exclusion_audience]

anomaly_daily_job = define_asset_job(
    "anomaly_daily_job",
    selection=AssetSelection.groups(GROUP),
    description="Behaviour features, anomaly scores and the exclusion audience for one day (or a range, as one run).",
)
