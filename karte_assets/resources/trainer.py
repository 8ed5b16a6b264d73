"""The trainer seam: runs the training entrypoint somewhere and brings its results back."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from dagster import AssetExecutionContext, ConfigurableResource, PipesSubprocessClient

ENTRYPOINT_MODULE = "karte_assets.training.entrypoint"


@dataclass(frozen=True)
class TrainingJob:
    """What a training run needs; it travels to the entrypoint as Pipes extras."""

    partition_date: str
    data_uri: str  # the folder of the exported training data's Parquet files
    model_uri: str
    horizon_days: int
    lightgbm_params: Mapping[str, object]
    num_boost_round: int
    early_stopping_rounds: int
    # Overrides of the trainer's machine (see resources/worker_pool.py); the local trainer has one.
    worker_pool: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingOutcome:
    metrics: Mapping[str, object]
    feature_importance: Mapping[str, float] = field(default_factory=dict)
    # Binned validation results for the model's charts (training/evaluation.py).
    validation_summary: Mapping[str, object] = field(default_factory=dict)
    # Rows and content hash of the training data the job read (training/data.py).
    training_data: Mapping[str, object] = field(default_factory=dict)


class Trainer(ConfigurableResource, ABC):
    """Runs one training job to completion; raises if it fails."""

    @abstractmethod
    def train(self, context: AssetExecutionContext, job: TrainingJob) -> TrainingOutcome: ...


def outcome_from_messages(messages: list[object]) -> TrainingOutcome:
    reports = [message for message in messages if isinstance(message, Mapping) and "metrics" in message]
    if not reports:
        raise RuntimeError("the training job finished without reporting its metrics")
    return TrainingOutcome(**reports[-1])


class SubprocessTrainer(Trainer):
    """The local default: the entrypoint in a child Python process, talking back through Pipes."""

    python_executable: str = sys.executable

    def train(self, context, job):
        invocation = PipesSubprocessClient().run(
            context=context,
            command=[self.python_executable, "-m", ENTRYPOINT_MODULE],
            extras=asdict(job),
        )
        return outcome_from_messages(list(invocation.get_custom_messages()))
