import datetime as dt
import hashlib
import json

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, MetadataValue, ResourceParam
from pydantic import Field

from karte_assets.assets.checks import MODEL_AUC, DayChecks, spec
from karte_assets.assets.common import (
    daily_asset,
    for_each_day,
    markdown_table,
)
from karte_assets.assets.experiments import RunTracking, training_record
from karte_assets.clients import ClientRegistry, LoyaltyClient, run_clients
from karte_assets.plots import (
    calibration_figure,
    chart_metadata,
    feature_importance_figure,
    gain_lift_figure,
)
from karte_assets.resources.model_store import ModelStore
from karte_assets.resources.tracker import Tracker
from karte_assets.resources.trainer import Trainer, TrainingJob
from karte_assets.resources.warehouse import Warehouse


class ModelConfig(Config):
    num_leaves: int = Field(
        default=31, ge=2, description="LightGBM num_leaves: most leaves per tree; more fits finer patterns."
    )
    learning_rate: float = Field(
        default=0.05,
        gt=0,
        description="LightGBM learning_rate: how much each tree adds; smaller needs more rounds.",
    )
    min_data_in_leaf: int = Field(
        default=50,
        ge=1,
        description="LightGBM min_data_in_leaf: fewest users in a leaf; larger overfits less.",
    )
    feature_fraction: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="LightGBM feature_fraction: share of the features each tree may use.",
    )
    lambda_l2: float = Field(default=1.0, ge=0, description="LightGBM lambda_l2: L2 penalty on leaf values.")
    num_boost_round: int = Field(
        default=400,
        ge=1,
        description="Most boosting rounds; early stopping usually ends sooner, and the scoring model is "
        "refit on all snapshots for the best number of rounds.",
    )
    early_stopping_rounds: int = Field(
        default=30, ge=1, description="Stop when validation AUC has not improved for this many rounds."
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="LightGBM threads; by default every CPU of the machine that trains. The count used "
        "is in the model's metrics: a CPU model is reproducible for a given count.",
    )
    seed: int = Field(
        default=7, description="LightGBM seed: on CPU, the same data gives the same model (and version)."
    )
    min_validation_auc: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="A model validating below this ROC AUC is rejected: scoring keeps the previous model.",
    )
    max_auc_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="A model validating this much below the previous accepted model is rejected: scoring keeps the previous model.",
    )
    retrain_every_days: int = Field(
        default=7,
        ge=1,
        description="Train a new model once the last one trained (accepted or rejected) is this many days "
        "old; the days between are scored with the newest accepted model. 1 = a model every day.",
    )
    retrain_now: bool = Field(
        default=False,
        description="Train on every day of this run whatever the cadence (on demand; the preset_retrain_now "
        "job sets it).",
    )

    def lightgbm_params(self) -> dict[str, object]:
        # No device_type: CPU unless the trainer runs the job on a GPU (VertexTrainer); the learner's
        # determinism settings follow the device (training/loyalty.py learner_params).
        return self.model_dump(
            exclude={
                "num_boost_round",
                "early_stopping_rounds",
                "min_validation_auc",
                "max_auc_drop",
                "retrain_every_days",
                "retrain_now",
            }
        )


def why_not_trainable(summary: pd.DataFrame) -> str | None:
    """Why the training set summarised by ``summary`` cannot give a validated model, or None."""
    if summary.empty:
        return "no labelled snapshot yet: the history is shorter than min_history_days + horizon_days"
    horizon = int(summary["horizon_days"].max())
    newest = summary["snapshot_date"].max()
    validation = summary[summary["snapshot_date"] == newest]
    train = summary[summary["snapshot_date"] <= newest - pd.Timedelta(days=horizon)]
    if train.empty:
        return f"no training snapshot {horizon} days before the validation snapshot {newest:%Y-%m-%d} yet"
    for name, part in (("training", train), ("validation", validation)):
        positives, rows = int(part["positives"].sum()), int(part["snapshot_rows"].sum())
        if positives == 0 or positives == rows:
            return f"the {name} snapshots have only one label class ({positives} of {rows} positive)"
    return None


def why_not_due(day: dt.date, last_trained: dt.date | None, config: ModelConfig) -> str | None:
    """Why the retrain cadence keeps the current model on ``day``, or None when a model is due.

    The cadence counts from the last model trained, accepted or rejected: a rejected model waits
    for the next turn like any other, so a weak data period does not train every day.
    """
    if config.retrain_now or last_trained is None:
        return None
    age = (day - last_trained).days
    if age >= config.retrain_every_days:
        return None
    return (
        f"not due: the last model was trained on {last_trained} ({age} day{'s' if age > 1 else ''} ago) and "
        f"retrain_every_days is {config.retrain_every_days}; scores use the newest accepted model"
    )


def model_version(day: dt.date, model_text: str) -> str:
    # Named by content: retraining the same data gives the same version, and nothing is overwritten.
    return f"loyalty-{day:%Y%m%d}-{hashlib.sha256(model_text.encode()).hexdigest()[:10]}"


def why_rejected(previous: pd.DataFrame, auc: float, config: ModelConfig) -> str | None:
    """Why a model validating at ``auc`` must not score, or None: too weak, or much worse than the
    client's ``previous`` accepted model (a ``latest_model`` row, or none)."""
    if auc < config.min_validation_auc:
        return f"validation AUC {auc:.4f} is below min_validation_auc {config.min_validation_auc}"
    if not previous.empty and auc < previous["validation_auc"].iloc[0] - config.max_auc_drop:
        return (
            f"validation AUC {auc:.4f} is more than {config.max_auc_drop} below the previous model "
            f"{previous['model_version'].iloc[0]} ({previous['validation_auc'].iloc[0]:.4f})"
        )
    return None


@daily_asset(
    deps=[AssetKey("loyalty_training_set")],
    kinds={"lightgbm"},
    check_specs=[
        spec(
            MODEL_AUC,
            "loyalty_model",
            "The model validates above min_validation_auc and not more than max_auc_drop below the previous model; "
            "a model that fails is kept for inspection but never scores.",
        )
    ],
)
def loyalty_model(
    context: AssetExecutionContext,
    config: ModelConfig,
    warehouse: Warehouse,
    trainer: Trainer,
    model_store: ModelStore,
    tracker: Tracker,
    loyalty_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """LightGBM model of the day per client, trained through the trainer resource and validated on a later time slice than it learns from."""
    warehouse.ensure_table("loyalty_model_table")
    clients = run_clients(context, loyalty_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    client_ids = list(configs)
    reports: dict[tuple[str, dt.date], dict] = {}
    tracking = RunTracking(context, tracker)
    checks = DayChecks()

    def train_client(
        day: dt.date,
        client: LoyaltyClient,
        last_trained: dt.date | None,
        summary: pd.DataFrame,
        previous: pd.DataFrame,
    ) -> dict:
        """The client's loyalty_model row of ``day``: a model trained, rejected, or why none was."""
        own = configs[client.client_id]
        not_due = why_not_due(day, last_trained, own)
        reason = not_due or why_not_trainable(summary)
        if reason:
            context.log.info(f"{day} {client.client_id}: no model trained: {reason}")
            return {
                "status": "not_due" if not_due else "skipped",
                "note": reason,
                "judged": (True, f"{client.client_id}: no model trained, nothing to judge: {reason}"),
            }
        job_key = f"{context.run_id}/{day}/{client.client_id}"
        try:
            # The rows go from the warehouse to files the job reads, never through this process.
            data_uri = warehouse.export_query(
                "training_data",
                {"partition_date": day, "client_ids": [client.client_id]},
                model_store.staging_prefix(job_key, "training_data"),
            )
            job = TrainingJob(
                partition_date=day.isoformat(),
                client_id=client.client_id,
                data_uri=data_uri,
                model_uri=model_store.staged_model_uri(job_key),
                horizon_days=int(summary["horizon_days"].max()),
                lightgbm_params=own.lightgbm_params(),
                num_boost_round=own.num_boost_round,
                early_stopping_rounds=own.early_stopping_rounds,
            )
            outcome = trainer.train(context, job)
            model_text = model_store.read_model(job.model_uri)
            version = model_version(day, model_text)
            uri = model_store.publish(job_key, version)
        finally:
            model_store.discard_staging(job_key)
        experiment = tracking.track(training_record(context, day, job, outcome, version, model_text))
        metrics = dict(outcome.metrics)
        rejection = why_rejected(previous, metrics["validation_auc"], own)
        if rejection:
            context.log.warning(
                f"{day} {client.client_id}: {version} rejected, scoring keeps the previous model: {rejection}"
            )
        reports[(client.client_id, day)] = {
            "metrics": metrics,
            "feature_importance": dict(outcome.feature_importance),
            "validation_summary": dict(outcome.validation_summary),
            "model_version": version,
            "model_uri": uri,
            "experiment": experiment,
        }
        return {
            "status": "rejected" if rejection else "trained",
            "note": rejection,
            "model_version": version,
            "model_uri": uri,
            **{
                key: metrics[key]
                for key in (
                    "validation_auc",
                    "baseline_auc",
                    "train_rows",
                    "validation_rows",
                    "best_iteration",
                )
            },
            "judged": (
                rejection is None,
                f"{client.client_id}: "
                + (rejection or f"{version}: validation AUC {metrics['validation_auc']:.4f}, accepted"),
            ),
        }

    def train(day: dt.date) -> int:
        # One query each for every client of the run: statements grow with days, not clients.
        last = warehouse.query("last_training", {"partition_date": day, "client_ids": client_ids})
        last_trained = {
            client_id: pd.Timestamp(trained).date()
            for client_id, trained in zip(last["client_id"], last["partition_date"], strict=True)
            if pd.notna(trained)
        }
        summaries = warehouse.query("training_set_summary", {"partition_date": day, "client_ids": client_ids})
        previous = warehouse.query(
            "latest_model", {"partition_date": day - dt.timedelta(days=1), "client_ids": client_ids}
        )
        rows = []
        for client in clients:
            mine = summaries["client_id"] == client.client_id
            row = train_client(
                day,
                client,
                last_trained.get(client.client_id),
                summaries[mine].drop(columns="client_id").reset_index(drop=True),
                previous[previous["client_id"] == client.client_id],
            )
            rows.append({"client_id": client.client_id, "model_version": None, "model_uri": None, **row})
        judged = [row.pop("judged") for row in rows]
        checks.record(MODEL_AUC, day, all(ok for ok, _ in judged), "; ".join(detail for _, detail in judged))
        frame = pd.DataFrame(rows).assign(trained_at=pd.Timestamp.now("UTC").tz_localize(None))
        frame = frame.reindex(columns=MODEL_COLUMNS)
        warehouse.replace_partition_with_rows("loyalty_model", day, frame, clients=client_ids)
        return int((frame["status"] == "trained").sum())

    trained = for_each_day(context, warehouse, train)
    by_day = sorted(reports.items(), key=lambda item: item[0][1])
    newest = {client_id: report for (client_id, _), report in by_day}  # each client's newest model
    metadata = model_metadata(trained, {day: report for (_, day), report in by_day}, config)
    if len(clients) > 1 and newest:
        metadata["models_by_client"] = MetadataValue.md(
            markdown_table(
                pd.DataFrame(
                    [
                        (
                            client_id,
                            r["model_version"],
                            r["metrics"]["validation_auc"],
                            r["metrics"]["baseline_auc"],
                        )
                        for client_id, r in sorted(newest.items())
                    ],
                    columns=["client_id", "model_version", "validation_auc", "baseline_auc"],
                )
            )
        )
    if reports and len(clients) == 1:
        latest = reports[max(reports, key=lambda key: key[1])]
        summary = latest["validation_summary"]
        metadata |= chart_metadata(
            context.log,
            {
                "gain_lift_chart": lambda: gain_lift_figure(summary),
                "calibration_chart": lambda: calibration_figure(summary["calibration"]),
                "feature_importance_chart": lambda: feature_importance_figure(latest["feature_importance"]),
            },
        )
    return MaterializeResult(metadata=metadata, check_results=checks.results())


# The loyalty_model table's columns after partition_date (sql/loyalty_model_table.sql).
MODEL_COLUMNS = [
    "client_id",
    "status",
    "note",
    "model_version",
    "model_uri",
    "validation_auc",
    "baseline_auc",
    "train_rows",
    "validation_rows",
    "best_iteration",
    "trained_at",
]


def model_metadata(
    trained: dict[dt.date, int], reports: dict[dt.date, dict], config: ModelConfig
) -> dict[str, object]:
    metadata: dict[str, object] = {
        "days": MetadataValue.int(len(trained)),
        "models_trained": MetadataValue.int(sum(trained.values())),
        "retrain_every_days": MetadataValue.int(config.retrain_every_days),
        "lightgbm_params": MetadataValue.json(config.lightgbm_params()),
    }
    if not reports:
        metadata["note"] = MetadataValue.text(
            "no model trained in this run: no day was due for retraining with enough labelled history"
        )
        return metadata
    newest = max(reports)
    metrics = reports[newest]["metrics"]
    importance = pd.DataFrame(
        sorted(reports[newest]["feature_importance"].items(), key=lambda item: -item[1])[:15],
        columns=["feature", "gain"],
    )
    metadata.update(
        {
            "model_day": MetadataValue.text(str(newest)),
            "model_version": MetadataValue.text(reports[newest]["model_version"]),
            "model_uri": MetadataValue.path(reports[newest]["model_uri"]),
            "validation_auc": MetadataValue.float(metrics["validation_auc"]),
            "baseline_auc": MetadataValue.float(metrics["baseline_auc"]),
            "baseline": MetadataValue.text(f"ranking by {metrics['baseline']}"),
            "metrics": MetadataValue.json(json.loads(json.dumps(metrics, default=str))),
            # False for a GPU model: refitting the same data need not give the same version.
            "reproducible": MetadataValue.bool(bool(metrics.get("reproducible", True))),
            "feature_importance": MetadataValue.md(markdown_table(importance, "{:,.1f}")),
        }
    )
    experiment = reports[newest]["experiment"]
    if experiment:
        metadata["experiment_key"] = MetadataValue.text(experiment.key)
        metadata["experiment_url"] = MetadataValue.url(experiment.url)
    else:
        metadata["experiment"] = MetadataValue.text("not tracked: the run log's warning says why")
    if len(reports) > 1:
        per_day = pd.DataFrame(
            [
                (day, r["metrics"]["validation_auc"], r["metrics"]["baseline_auc"])
                for day, r in sorted(reports.items())
            ],
            columns=["day", "validation_auc", "baseline_auc"],
        )
        metadata["auc_per_day"] = MetadataValue.md(markdown_table(per_day))
    return metadata
