"""A loopback stand-in for the Cloud Storage JSON API: the calls google-cloud-storage makes for
buckets, small (multipart) uploads, media downloads, existence checks, listing, copies, deletes,
and the ``ifGenerationMatch`` precondition. Point a client at it with ``STORAGE_EMULATOR_HOST``.

IAM is enforced per identity, as on the real service. The official client sends no credentials to
an emulator, so each identity reaches the fake at its own base URL, ``endpoint_for(identity)``,
which stands in for the OAuth token that names the caller; the plain ``url`` is the project owner,
who holds roles/storage.admin on every bucket. Others hold only the roles granted per bucket.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import quote, unquote

import google_crc32c

from karte_assets_tests.fakes.http import FakeHttpService, Request, Response

_OBJECT = r"/storage/v1/b/([^/]+)/o/([^/]+)"
OWNER = "project-owner"
_IDENTITY_PATH = "/as/"

# The permissions of the predefined roles, as far as these methods use them:
# https://cloud.google.com/storage/docs/access-control/iam-roles . Storage Object Admin has every
# storage.objects.* permission but not storage.buckets.get; the legacy bucket roles have it.
_OBJECTS_ALL = {
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
    "storage.objects.update",
}
ROLES: dict[str, frozenset[str]] = {
    "roles/storage.admin": frozenset({"storage.buckets.get", "storage.buckets.update", *_OBJECTS_ALL}),
    "roles/storage.objectAdmin": frozenset(_OBJECTS_ALL),
    "roles/storage.objectUser": frozenset(_OBJECTS_ALL),
    "roles/storage.objectViewer": frozenset({"storage.objects.get", "storage.objects.list"}),
    "roles/storage.objectCreator": frozenset({"storage.objects.create"}),
    "roles/storage.legacyBucketReader": frozenset({"storage.buckets.get", "storage.objects.list"}),
    "roles/storage.legacyBucketWriter": frozenset(
        {"storage.buckets.get", "storage.objects.list", "storage.objects.create", "storage.objects.delete"}
    ),
}


class FakeGcs(FakeHttpService):
    """Buckets of objects in memory; ``objects[(bucket, name)]`` is (generation, bytes)."""

    def __init__(
        self,
        buckets: tuple[str, ...],
        grants: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
        custom_roles: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """``grants[bucket][identity]`` = roles granted on the bucket: predefined ones (``ROLES``)
        or ``custom_roles``, ``projects/<p>/roles/<name>`` -> permissions."""
        super().__init__()
        self.buckets = set(buckets)
        self.roles = {**ROLES, **{name: frozenset(perms) for name, perms in (custom_roles or {}).items()}}
        self.grants = {bucket: {OWNER: ["roles/storage.admin"]} for bucket in buckets}
        for bucket, members in (grants or {}).items():
            for identity, roles in members.items():
                unknown = set(roles) - set(self.roles)
                if unknown:  # as gcloud refuses to bind a role that does not exist
                    raise ValueError(f"unknown roles {sorted(unknown)} for {identity}")
                self.grants.setdefault(bucket, {})[identity] = list(roles)
        self.objects: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.written: list[tuple[str, bytes]] = []  # (object name, content) of every write, in order
        self._generation = 0
        self._lock = threading.Lock()
        self.route("GET", r"/storage/v1/b/([^/]+)", self._get_bucket)
        self.route("GET", r"/storage/v1/b/([^/]+)/iam/testPermissions", self._test_permissions)
        self.route("GET", r"/storage/v1/b/([^/]+)/o", self._list)
        self.route("GET", _OBJECT, self._get_metadata)
        self.route("DELETE", _OBJECT, self._delete)
        self.route("GET", r"/download" + _OBJECT, self._download)
        self.route("POST", r"/upload/storage/v1/b/([^/]+)/o", self._upload)
        self.route("POST", _OBJECT + r"/(?:copyTo|rewriteTo)/b/([^/]+)/o/([^/]+)", self._copy)

    def endpoint_for(self, identity: str) -> str:
        """The base URL (for ``STORAGE_EMULATOR_HOST``) at which requests are made as ``identity``."""
        return f"{self.url}{_IDENTITY_PATH}{quote(identity, safe='@.')}"

    def permissions(self, identity: str, bucket: str) -> frozenset[str]:
        roles = self.grants.get(bucket, {}).get(identity, ())
        return frozenset().union(*(self.roles[role] for role in roles))

    def dispatch(self, request: Request) -> Response:
        identity = OWNER
        if request.path.startswith(_IDENTITY_PATH):
            name, _, rest = request.path.removeprefix(_IDENTITY_PATH).partition("/")
            identity, request.path = unquote(name), "/" + rest
        request.headers["x-fake-identity"] = identity  # always set here: a client cannot choose it
        return super().dispatch(request)

    def _denied(self, request: Request, bucket: str, *needed: str) -> Response | None:
        """GCS's 403 when the caller lacks one of ``needed`` on ``bucket``; checked before existence,
        so a caller without access cannot learn whether a bucket or object exists. Which permission
        each JSON method needs: https://cloud.google.com/storage/docs/access-control/iam-json"""
        identity = request.headers["x-fake-identity"]
        held = self.permissions(identity, bucket)
        for permission in needed:
            if permission not in held:
                kind = "bucket" if permission.startswith("storage.buckets.") else "object"
                return Response.error(
                    403,
                    f"{identity} does not have {permission} access to the Google Cloud Storage {kind}. "
                    f"Permission '{permission}' denied on resource (or it may not exist).",
                    "forbidden",
                )
        return None

    def text(self, uri: str) -> str:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        return self.objects[(bucket, name)][1].decode()

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(name for b, name in self.objects if b == bucket and name.startswith(prefix))

    def _resource(self, bucket: str, name: str) -> dict[str, object]:
        generation, data = self.objects[(bucket, name)]
        crc = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{generation}",
            "bucket": bucket,
            "name": name,
            "generation": str(generation),
            "metageneration": "1",
            "size": str(len(data)),
            "crc32c": crc,
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "updated": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }

    def _missing(self, bucket: str, name: str | None = None) -> Response | None:
        if bucket not in self.buckets:
            return Response.error(404, f"The specified bucket does not exist: {bucket}", "notFound")
        if name is not None and (bucket, name) not in self.objects:
            return Response.error(404, f"No such object: {bucket}/{name}", "notFound")
        return None

    def _writing_denied(self, request: Request, bucket: str, name: str) -> Response | None:
        # Writing an object needs storage.objects.create, and storage.objects.delete as well when
        # it replaces one that exists (iam-json, objects.insert and objects.rewrite).
        needed = ["storage.objects.create"]
        if (bucket, name) in self.objects:
            needed.append("storage.objects.delete")
        return self._denied(request, bucket, *needed)

    def _store(self, bucket: str, name: str, data: bytes, if_generation_match: str | None) -> Response:
        with self._lock:
            current = self.objects.get((bucket, name), (0, b""))[0]
            if if_generation_match is not None and int(if_generation_match) != current:
                return Response.error(412, "At least one of the pre-conditions you specified did not hold.")
            self._generation += 1
            self.objects[(bucket, name)] = (self._generation, data)
            self.written.append((name, data))
            return Response.json(self._resource(bucket, name))

    def _get_bucket(self, request: Request) -> Response:
        (bucket,) = request.groups
        return (
            self._denied(request, bucket, "storage.buckets.get")
            or self._missing(bucket)
            or Response.json({"kind": "storage#bucket", "name": bucket, "id": bucket})
        )

    def _test_permissions(self, request: Request) -> Response:
        # buckets.testIamPermissions needs no permission: it answers which of the asked ones the
        # caller holds (https://cloud.google.com/storage/docs/json_api/v1/buckets/testIamPermissions).
        (bucket,) = request.groups
        held = self.permissions(request.headers["x-fake-identity"], bucket)
        asked = request.query_lists.get("permissions", [])
        return Response.json(
            {"kind": "storage#testIamPermissionsResponse", "permissions": [p for p in asked if p in held]}
        )

    def _get_metadata(self, request: Request) -> Response:
        return (
            self._denied(request, request.groups[0], "storage.objects.get")
            or self._missing(*request.groups)
            or Response.json(self._resource(*request.groups))
        )

    def _download(self, request: Request) -> Response:
        missing = self._denied(request, request.groups[0], "storage.objects.get") or self._missing(
            *request.groups
        )
        if missing:
            return missing
        resource = self._resource(*request.groups)
        data = self.objects[request.groups][1]
        # The client checks this hash against what it received.
        return Response(
            200,
            data,
            {"x-goog-hash": f"crc32c={resource['crc32c']}", "x-goog-generation": resource["generation"]},
        )

    def _delete(self, request: Request) -> Response:
        missing = self._denied(request, request.groups[0], "storage.objects.delete") or self._missing(
            *request.groups
        )
        if missing:
            return missing
        del self.objects[request.groups]
        return Response(204)

    def _list(self, request: Request) -> Response:
        (bucket,) = request.groups
        missing = self._denied(request, bucket, "storage.objects.list") or self._missing(bucket)
        if missing:
            return missing
        names = self.names(bucket, request.query.get("prefix", ""))
        return Response.json({"kind": "storage#objects", "items": [self._resource(bucket, n) for n in names]})

    def _upload(self, request: Request) -> Response:
        (bucket,) = request.groups
        if request.query.get("uploadType") != "multipart":
            return Response.error(501, f"the fake takes multipart uploads only, not {request.query}")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.body
        )
        metadata_part, media_part = list(message.iter_parts())
        object_name = json.loads(metadata_part.get_payload(decode=True))["name"]
        missing = self._writing_denied(request, bucket, object_name) or self._missing(bucket)
        if missing:
            return missing
        return self._store(
            bucket, object_name, media_part.get_payload(decode=True), request.query.get("ifGenerationMatch")
        )

    def _copy(self, request: Request) -> Response:
        source_bucket, source_name, bucket, name = request.groups
        missing = (
            self._denied(request, source_bucket, "storage.objects.get")
            or self._writing_denied(request, bucket, name)
            or self._missing(source_bucket, source_name)
            or self._missing(bucket)
        )
        if missing:
            return missing
        data = self.objects[(source_bucket, source_name)][1]
        stored = self._store(bucket, name, data, request.query.get("ifGenerationMatch"))
        if stored.status != 200 or "rewriteTo" not in request.path:
            return stored
        return Response.json(
            {
                "kind": "storage#rewriteResponse",
                "done": True,
                "resource": self._resource(bucket, name),
                "totalBytesRewritten": str(len(data)),
                "objectSize": str(len(data)),
            }
        )


@contextmanager
def emulated_gcs(monkeypatch, *buckets: str) -> Iterator[FakeGcs]:
    """A FakeGcs holding ``buckets`` that every official client of the test reaches as its owner
    (``STORAGE_EMULATOR_HOST``)."""
    fake = FakeGcs(buckets).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    try:
        yield fake
    finally:
        fake.stop()
