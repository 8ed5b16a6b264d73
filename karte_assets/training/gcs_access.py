"""What Dagster Pipes over Cloud Storage does with the bucket, as IAM permissions, and a check that
names the ones a caller lacks before Pipes hides the failure.

Every Pipes call goes through ``Client.get_bucket()``, a buckets.get request (python-storage
google/cloud/storage/client.py ``get_bucket`` -> ``Bucket.reload``), so ``storage.buckets.get`` is
needed beside the object permissions; Storage Object Admin/User do not include it
(https://cloud.google.com/storage/docs/access-control/iam-roles).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.cloud import storage

# The code location: dagster-gcp's PipesGCSContextInjector uploads the context and deletes it,
# PipesGCSMessageReader tests for and downloads message chunks (dagster_gcp/pipes/
# context_injectors.py and message_readers.py, all through get_bucket()).
CODE_LOCATION_PERMISSIONS = (
    "storage.buckets.get",
    "storage.objects.create",
    "storage.objects.get",
    "storage.objects.delete",
)
# The training job: dagster_pipes' PipesGCSContextLoader downloads the context, PipesGCSMessageWriter
# uploads message chunks (dagster_pipes/__init__.py, get_bucket() again); the entrypoint also
# reads its training data and writes the model.
JOB_PERMISSIONS = ("storage.buckets.get", "storage.objects.get", "storage.objects.create")


def missing_permissions(client: storage.Client, bucket: str, needed: Sequence[str]) -> list[str]:
    """The permissions in ``needed`` that the client's identity lacks on ``bucket``.

    buckets.testIamPermissions itself needs no permission
    (https://cloud.google.com/storage/docs/access-control/iam-json), so it works for any caller.
    """
    held = set(client.bucket(bucket).test_iam_permissions(list(needed)))
    return [permission for permission in needed if permission not in held]
