"""The model store seam: staging for job data and models, and published model versions."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from dagster import ConfigurableResource

from karte_assets.serving.store import LocalSnapshotStore, SnapshotStore


class ModelStore(ConfigurableResource, ABC):
    """Holds what a training job reads and writes, and every published model version.

    A model is visible under its version only once it is complete: ``publish`` moves a finished
    model from staging in one step, so a training job killed mid-way leaves nothing registered.
    """

    @abstractmethod
    def staging_prefix(self, job_key: str, name: str) -> str:
        """A folder for a job's files ``name`` (training data, audience, scores), ending in ``/``:
        the warehouse exports there and the job reads and writes there."""

    @abstractmethod
    def staged_model_uri(self, job_key: str) -> str:
        """Where a job's trainer writes its model file."""

    @abstractmethod
    def publish(self, job_key: str, version: str) -> str:
        """Make a job's staged model the model ``version``; returns the published URI."""

    @abstractmethod
    def read_model(self, uri: str) -> str:
        """The text of a model file, staged or published."""

    @abstractmethod
    def discard_staging(self, job_key: str) -> None:
        """Remove what a job staged."""

    @abstractmethod
    def snapshots(self) -> SnapshotStore:
        """The serving snapshots the lookup service follows (``serving/`` beside the models)."""


class LocalModelStore(ModelStore):
    """The local default: a directory (``$KARTE_HOME/models``)."""

    root: str

    def _staging(self, job_key: str) -> Path:
        return Path(self.root) / "staging" / job_key

    def staging_prefix(self, job_key, name):
        return f"{self._staging(job_key) / name}/"

    def staged_model_uri(self, job_key):
        return str(self._staging(job_key) / "model.txt")

    def publish(self, job_key, version):
        target = Path(self.root) / "versions" / version / "model.txt"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # A version is named by the model's content hash, so an existing one is the same model.
            os.replace(self.staged_model_uri(job_key), target)
        return str(target)

    def read_model(self, uri):
        return Path(uri).read_text()

    def discard_staging(self, job_key):
        shutil.rmtree(self._staging(job_key), ignore_errors=True)

    def snapshots(self):
        return LocalSnapshotStore(Path(self.root))
