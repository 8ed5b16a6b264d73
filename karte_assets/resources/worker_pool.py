"""The machine a training job runs on: one Vertex AI worker pool, every field optional.

Only the Vertex AI trainer has one: it holds the defaults, a client's ``worker_pool`` attribute
(defs.yaml) and one run's tag ``karte/worker_pool`` override single fields, so an analyst changes
only what they need.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import Config
from pydantic import Field

WORKER_POOL_TAG = "karte/worker_pool"  # one run's worker pool fields, a JSON object


class WorkerPool(Config):
    """A Vertex AI worker pool; a field left empty takes the trainer resource's default."""

    machine_type: str | None = Field(
        default=None, description='Compute Engine machine type, e.g. "n1-standard-8".'
    )
    accelerator_type: str | None = Field(
        default=None,
        description='Vertex AI accelerator, e.g. "NVIDIA_TESLA_T4", "NVIDIA_L4"; with count 0 for none.',
    )
    accelerator_count: int | None = Field(
        default=None, ge=0, description="GPUs per replica; 0 trains on CPU."
    )
    replica_count: int | None = Field(
        default=None, ge=1, description="Replicas of the worker (1 for LightGBM)."
    )
    boot_disk_type: str | None = Field(default=None, description='"pd-ssd" or "pd-standard".')
    boot_disk_size_gb: int | None = Field(default=None, ge=10, description="Boot disk size in GB.")
    image_uri: str | None = Field(
        default=None, description="Training container image (KARTE_TRAINING_IMAGE)."
    )
    service_account: str | None = Field(default=None, description="Service account the job runs as.")
    network: str | None = Field(
        default=None, description='VPC network to peer with, "projects/<number>/global/networks/<name>".'
    )
    timeout_seconds: int | None = Field(
        default=None, ge=60, description="Vertex AI cancels the job after this."
    )

    def overrides(self) -> dict[str, object]:
        """The fields that are set."""
        return self.model_dump(exclude_none=True)

    def with_overrides(self, overrides: Mapping[str, object]) -> WorkerPool:
        unknown = set(overrides) - set(type(self).model_fields)
        if unknown:
            raise ValueError(f"unknown worker pool fields {sorted(unknown)}")
        return WorkerPool(**{**self.overrides(), **overrides})

    def require(self, *names: str) -> None:
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise ValueError(f"the worker pool needs {', '.join(missing)}: set it on the trainer resource")
