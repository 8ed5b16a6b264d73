"""The trainer seam: runs the training and scoring entrypoints somewhere and brings their results back."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from dagster import AssetExecutionContext, ConfigurableResource, PipesSubprocessClient

ENTRYPOINT_MODULE = "karte_assets.training.entrypoint"
SCORING_MODULE = "karte_assets.training.scoring"


@dataclass(frozen=True)
class TrainingJob:
    """What a training run needs, wherever it runs; it travels to the entrypoint as Pipes extras.
    Where it runs (machine, GPU) is the trainer resource's own configuration."""

    partition_date: str
    client_id: str  # whose model: a trainer may run each client's jobs on its own machine
    data_uri: str  # the folder of the exported training data's Parquet files
    model_uri: str
    horizon_days: int
    lightgbm_params: Mapping[str, object]
    num_boost_round: int
    early_stopping_rounds: int


@dataclass(frozen=True)
class ScoringJob:
    """What a scoring run needs: the folder of the exported audience features of one or many
    clients on one or many days, each client's model file, and the folder for the raw scores
    (``partition_date``, ``client_id``, ``user_id``, ``loyal_score`` Parquet files, one folder per
    day: ``uris.day_folder``). One job scores every client with a model on every consecutive day
    of a run that the same models score: jobs grow with models, not with days or clients."""

    partition_dates: tuple[str, ...]  # consecutive days, oldest first
    features_uri: str
    models: Mapping[str, str]  # client_id -> model URI
    scores_uri: str


@dataclass(frozen=True)
class TrainingOutcome:
    metrics: Mapping[str, object]
    feature_importance: Mapping[str, float] = field(default_factory=dict)
    # Binned validation results for the model's charts (training/evaluation.py).
    validation_summary: Mapping[str, object] = field(default_factory=dict)
    # Rows and content hash of the training data the job read (training/data.py).
    training_data: Mapping[str, object] = field(default_factory=dict)


class Trainer(ConfigurableResource, ABC):
    """Runs one training or scoring job to completion; raises if it fails."""

    @abstractmethod
    def train(self, context: AssetExecutionContext, job: TrainingJob) -> TrainingOutcome: ...

    @abstractmethod
    def score(self, context: AssetExecutionContext, job: ScoringJob) -> int:
        """Score the audience where the job runs; returns the number of users scored."""


def _last_report(messages: list[object], key: str, missing: str) -> Mapping[str, object]:
    """The newest Pipes custom message carrying ``key``; a job that sent none failed to report."""
    reports = [message for message in messages if isinstance(message, Mapping) and key in message]
    if not reports:
        raise RuntimeError(missing)
    return reports[-1]


def outcome_from_messages(messages: list[object]) -> TrainingOutcome:
    return TrainingOutcome(
        **_last_report(messages, "metrics", "the training job finished without reporting its metrics")
    )


def scored_from_messages(messages: list[object]) -> int:
    report = _last_report(
        messages, "scored", "the scoring job finished without reporting how many users it scored"
    )
    return int(report["scored"])


class SubprocessTrainer(Trainer):
    """The local default: the entrypoint in a child Python process, talking back through Pipes."""

    python_executable: str = sys.executable

    def train(self, context, job):
        return outcome_from_messages(self._run(context, ENTRYPOINT_MODULE, asdict(job)))

    def score(self, context, job):
        return scored_from_messages(self._run(context, SCORING_MODULE, asdict(job)))

    def _run(self, context: AssetExecutionContext, module: str, extras: Mapping[str, object]) -> list:
        invocation = PipesSubprocessClient().run(
            context=context, command=[self.python_executable, "-m", module], extras=dict(extras)
        )
        return list(invocation.get_custom_messages())
