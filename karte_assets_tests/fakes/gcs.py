"""A loopback stand-in for the Cloud Storage JSON API: the calls google-cloud-storage makes for
buckets, small (multipart) uploads, media downloads, existence checks, listing, copies, deletes,
and the ``ifGenerationMatch`` precondition. Point a client at it with ``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import hashlib
import json
import threading

import google_crc32c

from karte_assets_tests.fakes.http import FakeHttpService, Request, Response

_OBJECT = r"/storage/v1/b/([^/]+)/o/([^/]+)"


class FakeGcs(FakeHttpService):
    """Buckets of objects in memory; ``objects[(bucket, name)]`` is (generation, bytes)."""

    def __init__(self, buckets: tuple[str, ...]) -> None:
        super().__init__()
        self.buckets = set(buckets)
        self.objects: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.written: list[tuple[str, bytes]] = []  # (object name, content) of every write, in order
        self._generation = 0
        self._lock = threading.Lock()
        self.route("GET", r"/storage/v1/b/([^/]+)", self._get_bucket)
        self.route("GET", r"/storage/v1/b/([^/]+)/o", self._list)
        self.route("GET", _OBJECT, self._get_metadata)
        self.route("DELETE", _OBJECT, self._delete)
        self.route("GET", r"/download" + _OBJECT, self._download)
        self.route("POST", r"/upload/storage/v1/b/([^/]+)/o", self._upload)
        self.route("POST", _OBJECT + r"/(?:copyTo|rewriteTo)/b/([^/]+)/o/([^/]+)", self._copy)

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
        return self._missing(bucket) or Response.json(
            {"kind": "storage#bucket", "name": bucket, "id": bucket}
        )

    def _get_metadata(self, request: Request) -> Response:
        return self._missing(*request.groups) or Response.json(self._resource(*request.groups))

    def _download(self, request: Request) -> Response:
        missing = self._missing(*request.groups)
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
        missing = self._missing(*request.groups)
        if missing:
            return missing
        del self.objects[request.groups]
        return Response(204)

    def _list(self, request: Request) -> Response:
        (bucket,) = request.groups
        missing = self._missing(bucket)
        if missing:
            return missing
        names = self.names(bucket, request.query.get("prefix", ""))
        return Response.json({"kind": "storage#objects", "items": [self._resource(bucket, n) for n in names]})

    def _upload(self, request: Request) -> Response:
        (bucket,) = request.groups
        if request.query.get("uploadType") != "multipart":
            return Response.error(501, f"the fake takes multipart uploads only, not {request.query}")
        missing = self._missing(bucket)
        if missing:
            return missing
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.body
        )
        metadata_part, media_part = list(message.iter_parts())
        object_name = json.loads(metadata_part.get_payload(decode=True))["name"]
        return self._store(
            bucket, object_name, media_part.get_payload(decode=True), request.query.get("ifGenerationMatch")
        )

    def _copy(self, request: Request) -> Response:
        source_bucket, source_name, bucket, name = request.groups
        missing = self._missing(source_bucket, source_name) or self._missing(bucket)
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
