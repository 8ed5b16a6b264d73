"""The tracker seam: each training's parameters, metrics, data and model as a Comet ML experiment."""

from __future__ import annotations

import io
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource

# The experiment is opened in the orchestrating process after the training job, so Comet's
# automatic logging would capture Dagster's own stdout, argv, source and environment: all off.
QUIET = {
    "display_summary_level": 0,
    "auto_metric_logging": False,
    "auto_param_logging": False,
    "auto_output_logging": False,
    "auto_histogram_weight_logging": False,
    "log_code": False,
    "log_graph": False,
    "log_env_details": False,
    "log_git_metadata": False,
    "log_git_patch": False,
    "parse_args": False,
}
MODEL_NAME = "loyalty_model"


@dataclass(frozen=True)
class TrainingRecord:
    """One finished training, as the tracker logs it."""

    name: str  # the model version
    params: Mapping[str, object]
    metrics: Mapping[str, object]
    feature_importance: Mapping[str, float]
    datasets: Mapping[str, object]  # sizes and content hashes of the data it learned from
    model_text: str
    tags: Mapping[str, str]  # Dagster run id, asset, partition


@dataclass(frozen=True)
class TrackedExperiment:
    """Where a tracked training can be found."""

    key: str
    url: str  # the experiment page online, the archive to upload offline


class TrackingError(RuntimeError):
    """The experiment could not be recorded (the training itself is unaffected)."""


class Tracker(ConfigurableResource, ABC):
    """Records each training as an experiment; raises when it could not."""

    @abstractmethod
    def track(self, training: TrainingRecord) -> TrackedExperiment: ...


class CometTracker(Tracker, ABC):
    """What Comet ML logs of a training, online or offline alike."""

    project: str

    @abstractmethod
    def _start(self):
        """A new experiment, ready to log to."""

    @abstractmethod
    def _tracked(self, experiment) -> TrackedExperiment:
        """Where the ended ``experiment`` can be found; raises ``TrackingError`` if nowhere."""

    def track(self, training):
        experiment = self._start()
        try:
            experiment.set_name(training.name)
            experiment.add_tags([f"{key}:{value}" for key, value in training.tags.items()])
            experiment.log_others({**training.tags, **training.datasets})
            experiment.log_parameters(dict(training.params))
            numeric = {k: v for k, v in training.metrics.items() if isinstance(v, numbers.Number)}
            experiment.log_metrics(numeric)
            experiment.log_others({k: v for k, v in training.metrics.items() if k not in numeric})
            experiment.log_asset_data(dict(training.feature_importance), name="feature_importance.json")
            experiment.log_model(MODEL_NAME, io.BytesIO(training.model_text.encode()), file_name="model.txt")
        finally:
            experiment.end()
        return self._tracked(experiment)


class CometOfflineTracker(CometTracker):
    """The local default: one archive per experiment under ``directory`` (``$KARTE_HOME/comet``), for ``comet upload``."""

    directory: str

    def _start(self):
        import comet_ml  # imported on use: comet_ml patches ML libraries when imported

        Path(self.directory).mkdir(parents=True, exist_ok=True)
        return comet_ml.OfflineExperiment(
            project_name=self.project, offline_directory=self.directory, **QUIET
        )

    def _tracked(self, experiment):
        archive = Path(self.directory) / f"{experiment.get_key()}.zip"
        if not archive.is_file():
            raise TrackingError(f"Comet wrote no offline archive at {archive}")
        return TrackedExperiment(key=experiment.get_key(), url=archive.as_uri())


class CometOnlineTracker(CometTracker):
    """Comet ML online; the API key comes from ``COMET_API_KEY`` (via ``EnvVar``), the workspace from ``COMET_WORKSPACE``."""

    api_key: str

    def _start(self):
        import comet_ml

        if not self.api_key:
            raise TrackingError("no Comet API key: set COMET_API_KEY")
        experiment = comet_ml.Experiment(api_key=self.api_key, project_name=self.project, **QUIET)
        if not experiment.alive:
            # Comet logs the reason itself and, instead of raising, returns an experiment that drops everything.
            experiment.end()
            raise TrackingError("Comet ML did not accept the experiment (server unreachable or key refused)")
        return experiment

    def _tracked(self, experiment):
        return TrackedExperiment(key=experiment.get_key(), url=experiment.url)
