"""The model store on Google Cloud Storage: ``gs://<bucket>/<prefix>/{staging,versions,serving}/...``."""

from __future__ import annotations

from dagster_gcp import GCSResource
from google.api_core.exceptions import PreconditionFailed
from google.cloud import storage
from pydantic import Field

from karte_assets.resources.model_store import ModelStore
from karte_assets.serving.gcs_store import GcsSnapshotStore
from karte_assets.training.uris import read_bytes

MODEL_FILE = "model.txt"


class GcsModelStore(ModelStore):
    """Training data and models under one bucket prefix; published versions are never overwritten."""

    bucket: str = Field(description="The bucket (KARTE_GCS_BUCKET).")
    prefix: str = Field(description="Folder inside the bucket for this environment (KARTE_GCS_PREFIX).")
    gcs: GCSResource = Field(description="The Cloud Storage client's project; credentials come from ADC.")

    def _uri(self, *parts: str) -> str:
        return "gs://" + "/".join([self.bucket, self.prefix.strip("/"), *parts])

    def _name(self, *parts: str) -> str:
        return "/".join([self.prefix.strip("/"), *parts])

    def _bucket(self) -> storage.Bucket:
        return self.gcs.get_client().bucket(self.bucket)

    def staging_prefix(self, job_key, name):
        return self._uri("staging", job_key, name) + "/"

    def staged_model_uri(self, job_key):
        return self._uri("staging", job_key, MODEL_FILE)

    def publish(self, job_key, version):
        bucket = self._bucket()
        try:
            # ifGenerationMatch=0: copy only if no object has the name. A version is named by the
            # model's content hash, so one that exists already is this same model.
            bucket.copy_blob(
                bucket.blob(self._name("staging", job_key, MODEL_FILE)),
                bucket,
                self._name("versions", version, MODEL_FILE),
                if_generation_match=0,
            )
        except PreconditionFailed:
            pass
        return self._uri("versions", version, MODEL_FILE)

    def read_model(self, uri):
        return read_bytes(uri, self.gcs.get_client()).decode()

    def discard_staging(self, job_key):
        client = self.gcs.get_client()
        for blob in client.list_blobs(self.bucket, prefix=self._name("staging", job_key) + "/"):
            blob.delete()

    def snapshots(self):
        return GcsSnapshotStore(self._bucket(), self.prefix)
