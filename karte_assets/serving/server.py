"""The lookup service: each client's newest accepted scores, from memory, over HTTP/1.1.

An asyncio Protocol with httptools' parser (the parser uvicorn uses) rather than a web framework:
a lookup is a few microseconds of work, and a framework's routing, request objects and middleware
cost several times that (BENCHMARKS.md, "Real-time lookups"). Routes:

  GET  /v1/clients/{client}/users/{user_id}   one user's score, tier, anomaly flag, model version and day
  POST /v1/clients/{client}/users:batchGet    {"user_ids": [...]} -> {"users": [...]}, in order
  GET  /v1/clients/{client}/products/{product_id}   the product's demand and overstock (newest demand day)
  POST /v1/clients/{client}/products:batchGet {"product_ids": [...]} -> {"products": [...]}, in order
  GET  /healthz   the process answers;  GET /readyz  every client has a snapshot (names them)
  GET  /metrics   Prometheus text

Requests to /v1 carry the client's API key in ``X-Api-Key`` unless the service runs with
``auth=none`` (behind Cloud Run IAM, or on loopback). A background task polls the store and swaps
in a newer snapshot once it is loaded and verified; the swap is one reference assignment on the
event loop, so a request sees either the old snapshot or the new one, and none is dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote_to_bytes

import httptools

from karte_assets.serving.metrics import Metrics
from karte_assets.serving.snapshot import Snapshot, SnapshotError, SnapshotInfo, products_path
from karte_assets.serving.store import SnapshotStore, supersedes

BATCH_LIMIT = 1000
BODY_LIMIT = 1 << 20
MAX_USER_ID = 512  # bytes (and of a product id)
FLAGS = (b"false", b"true", b"null")  # by the snapshot's flag code 0, 1, -1 (no verdict)
PLAIN_JSON = re.compile(rb"[ !#-\[\]-~]*")  # printable ASCII but " and \\: a JSON string as it is
REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    503: b"Service Unavailable",
}
log = logging.getLogger(__name__)


class ApiKeys:
    """Which client each API key reads: a key reads only its own client.

    Configured as JSON ``{"<client>": "<key>" | ["<key>", ...]}`` (several keys: a rotation). Only
    SHA-256 digests are kept, and a presented key is looked up by its digest, so neither the keys
    nor a timing of comparisons against them stays in the process.
    """

    def __init__(self, text: str, where: str) -> None:
        try:
            config = json.loads(text)
            if not isinstance(config, dict) or not config:
                raise ValueError("not a non-empty JSON object")
        except ValueError as error:
            raise ValueError(f"{where} must be a JSON object of client -> API key(s): {error}") from None
        self._clients: dict[bytes, str] = {}
        for client, keys in config.items():
            for key in [keys] if isinstance(keys, str) else keys:
                if not isinstance(key, str) or len(key) < 24:
                    raise ValueError(
                        f"{where}: the API key of {client!r} must be a string of at least 24 characters"
                    )
                self._clients[hashlib.sha256(key.encode()).digest()] = client
        self.clients = sorted(set(self._clients.values()))

    def client_of(self, key: bytes) -> str | None:
        return self._clients.get(hashlib.sha256(key).digest())


@dataclass(frozen=True)
class Served:
    """A client's loaded snapshot and the pieces of JSON every answer from it shares."""

    snapshot: Snapshot
    info: SnapshotInfo
    published_at: float
    load_seconds: float
    loaded_at: float
    tail: bytes  # ',"anomaly_use_case":...,"anomaly_date":...,"model_version":...,"partition_date":...}'
    tiers: dict[str, bytes]
    default_tier: str

    @classmethod
    def load(cls, path: Path, info: SnapshotInfo, published_at: dt.datetime, default_tier: str) -> Served:
        started = time.perf_counter()
        snapshot = Snapshot(path, info)
        tail = json.dumps(
            {
                "anomaly_use_case": snapshot.anomaly.use_case,
                "anomaly_date": snapshot.anomaly.partition_date and str(snapshot.anomaly.partition_date),
                "model_version": info.model_version,
                "partition_date": str(info.partition_date),
            },
            separators=(",", ":"),
        )
        tail = "," + tail[1:]  # appended to an answer's own fields
        return cls(
            snapshot=snapshot,
            info=info,
            published_at=published_at.timestamp(),
            load_seconds=time.perf_counter() - started,
            loaded_at=time.time(),
            tail=tail.encode(),
            tiers={name: json.dumps(name).encode() for name in {*snapshot.tier_names, default_tier}},
            default_tier=default_tier,
        )

    def describe(self) -> dict[str, object]:
        return {
            "partition_date": str(self.info.partition_date),
            "model_version": self.info.model_version,
            "sha256": self.info.sha256,
            "users": self.info.users,
            "anomaly_use_case": self.snapshot.anomaly.use_case,
            "anomaly_date": self.snapshot.anomaly.partition_date
            and str(self.snapshot.anomaly.partition_date),
            "demand_date": self.info.products and str(self.info.products.demand_date),
            "products": self.info.products and self.info.products.products,
            "published_at": dt.datetime.fromtimestamp(self.published_at, dt.UTC).isoformat(
                timespec="seconds"
            ),
            "loaded_at": dt.datetime.fromtimestamp(self.loaded_at, dt.UTC).isoformat(timespec="seconds"),
        }


class JsonLines:
    """Structured logs, one JSON object a line (Cloud Logging reads ``severity``), flushed each second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, record: dict[str, object]) -> None:
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")


class LookupService:
    """The snapshots being served, the routes, and the polling that swaps snapshots in."""

    def __init__(
        self,
        store: SnapshotStore,
        clients: list[str],
        keys: ApiKeys | None,
        workdir: Path,
        default_tier: str = "none",
        logs: JsonLines | None = None,
    ) -> None:
        self.store = store
        self.clients = frozenset(clients)
        self.keys = keys
        self.workdir = workdir
        self.default_tier = default_tier
        self.served: dict[str, Served] = {}
        self.refused: dict[str, str] = {}  # client -> sha256 of the snapshot its pointer names, refused
        self.metrics = Metrics()
        self.logs = logs or JsonLines(sys.stdout)

    # ---- snapshots ----

    async def refresh(self, client: str) -> bool:
        """Load and swap in the client's newest snapshot if it supersedes the served one."""
        found = await asyncio.to_thread(self.store.latest, client)
        if found is None:
            return False
        info, published_at = found
        current = self.served.get(client)
        if current is not None and not supersedes(info, current.info):
            if info.partition_date < current.info.partition_date:
                self.logs.write(
                    {
                        "severity": "WARNING",
                        "message": "older snapshot not served",
                        "client": client,
                        "pointer_day": str(info.partition_date),
                        "served_day": str(current.info.partition_date),
                    }
                )
            return False
        if self.refused.get(client) == info.sha256:
            return False  # its bytes will not change: checking them again every poll only burns CPU
        path = await asyncio.to_thread(self.store.local_copy, info, self.workdir)
        try:
            served = await asyncio.to_thread(Served.load, path, info, published_at, self.default_tier)
        except SnapshotError:
            self.refused[client] = info.sha256
            raise
        self.served[client] = served  # the swap: requests after this line read the new snapshot
        self.metrics.swaps[client] += 1
        self.logs.write(
            {
                "severity": "INFO",
                "message": "snapshot served",
                "client": client,
                **served.describe(),
                "load_seconds": round(served.load_seconds, 3),
            }
        )
        if current is not None and current.snapshot.path.parent == self.workdir:
            # A download; the mappings live until unused.
            current.snapshot.path.unlink(missing_ok=True)
            products_path(current.snapshot.path).unlink(missing_ok=True)
        return True

    async def poll(self, seconds: float) -> None:
        while True:
            for client in sorted(self.clients):
                try:
                    await self.refresh(client)
                except Exception as error:  # noqa: BLE001 - logged and counted; the served snapshot stays
                    self.metrics.poll_errors += 1
                    self.logs.write(
                        {
                            "severity": "ERROR",
                            "message": "snapshot refresh failed",
                            "client": client,
                            "error": f"{type(error).__name__}: {error}",
                        }
                    )
            await asyncio.sleep(seconds)

    # ---- requests ----

    def handle(
        self, method: bytes, url: bytes, key: bytes | None, body: bytes
    ) -> tuple[int, bytes, str, str, int]:
        """(status, JSON body, route, client, users looked up) of one request."""
        path = url.partition(b"?")[0]
        if path.startswith(b"/v1/clients/"):
            client_bytes, _, rest = path[12:].partition(b"/")
            client = client_bytes.decode("ascii", "replace")
            if rest.startswith(b"users/") and method == b"GET":
                return (
                    *self._guarded(client, key, lambda served: self._lookup(client, served, rest[6:])),
                    "lookup",
                    client,
                    1,
                )
            if rest == b"users:batchGet" and method == b"POST":
                status, payload, users = self._batch_request(client, key, body)
                return status, payload, "batch", client, users
            if rest.startswith(b"products/") and method == b"GET":
                product_id = unquote_to_bytes(rest[9:])
                return (
                    *self._guarded(client, key, lambda served: self._product(client, served, product_id)),
                    "product",
                    client,
                    0,
                )
            if rest == b"products:batchGet" and method == b"POST":
                return *self._batch_products(client, key, body), "products_batch", client, 0
            known = rest.startswith((b"users", b"products"))
            return 405 if known else 404, _error("no such route"), "other", client, 0
        if path == b"/healthz":
            return 200, b'{"status":"ok"}', "healthz", "", 0
        if path == b"/readyz":
            ready = self.clients <= self.served.keys()
            body = {
                "ready": ready,
                "clients": {c: self.served[c].describe() for c in sorted(self.served)},
                "waiting_for": sorted(self.clients - self.served.keys()),
            }
            return 200 if ready else 503, json.dumps(body).encode(), "readyz", "", 0
        if path == b"/metrics":
            snapshots = {
                c: (s.info, s.published_at, s.load_seconds, s.info.users) for c, s in self.served.items()
            }
            return 200, self.metrics.render(snapshots), "metrics", "", 0
        return 404, _error("no such route"), "other", "", 0

    def _guarded(self, client: str, key: bytes | None, answer) -> tuple[int, bytes]:
        if self.keys is not None:
            if key is None:
                return 401, _error("missing X-Api-Key header")
            owner = self.keys.client_of(key)
            if owner is None:
                return 401, _error("invalid API key")
            if owner != client:
                return 403, _error("this API key does not read this client")
        if client not in self.clients:
            return 404, _error("unknown client", client=client)
        served = self.served.get(client)
        if served is None:
            return 503, _error("no snapshot loaded yet for this client", client=client)
        return answer(served)

    def _lookup(self, client: str, served: Served, raw_id: bytes) -> tuple[int, bytes]:
        user_id = unquote_to_bytes(raw_id) if b"%" in raw_id else raw_id
        if PLAIN_JSON.fullmatch(user_id):
            quoted = b'"' + user_id + b'"'  # nothing to escape: most ids, and much cheaper than json.dumps
        else:
            try:
                quoted = json.dumps(user_id.decode()).encode()
            except UnicodeDecodeError:
                return 400, _error("the user id is not UTF-8")
        if not 0 < len(user_id) <= MAX_USER_ID:
            return 400, _error(f"the user id must be 1 to {MAX_USER_ID} bytes")
        found = served.snapshot.find(user_id)
        head = b'{"client":"' + client.encode() + b'","user_id":' + quoted
        if found is None:
            self.metrics.users[(client, "missing")] += 1
            return 404, (
                head
                + b',"error":"unknown user","found":false,"coupon_tier":'
                + served.tiers[served.default_tier]
                + b',"flagged":null'
                + served.tail
            )
        self.metrics.users[(client, "found")] += 1
        score, tier, flag = found
        return 200, head + b',"found":true,"loyal_score":' + repr(
            score
        ).encode() + b',"coupon_tier":' + served.tiers[tier] + b',"flagged":' + FLAGS[flag] + served.tail

    def _batch_request(self, client: str, key: bytes | None, body: bytes) -> tuple[int, bytes, int]:
        ids = _requested_ids(body, "user_ids")
        if isinstance(ids, tuple):
            return *ids, 0
        status, payload = self._guarded(client, key, lambda served: self._batch(client, served, ids))
        return status, payload, len(ids)

    def _batch(self, client: str, served: Served, ids: list[str]) -> tuple[int, bytes]:
        users = []
        for user_id in ids:
            found = served.snapshot.find(user_id.encode())
            if found is None:
                users.append(
                    {"user_id": user_id, "found": False, "coupon_tier": served.default_tier, "flagged": None}
                )
            else:
                score, tier, flag = found
                users.append(
                    {
                        "user_id": user_id,
                        "found": True,
                        "loyal_score": score,
                        "coupon_tier": tier,
                        "flagged": None if flag < 0 else bool(flag),
                    }
                )
        hits = sum(user["found"] for user in users)
        self.metrics.users[(client, "found")] += hits
        self.metrics.users[(client, "missing")] += len(ids) - hits
        return 200, b'{"client":"' + client.encode() + b'","users":' + json.dumps(
            users
        ).encode() + served.tail

    # ---- products ----

    def _product_answer(self, served: Served, product_id: str) -> dict[str, object]:
        products = served.snapshot.products
        found = products.find(product_id.encode()) if products is not None else None
        answer: dict[str, object] = {"product_id": product_id, "found": found is not None}
        if found is None:
            answer["error"] = (
                "unknown product" if products is not None else "no demand forecast for this client"
            )
        else:
            answer |= found
            answer["stock_as_of"] = found["stock_as_of"] and str(found["stock_as_of"])
        return answer

    def _products_tail(self, served: Served) -> dict[str, object]:
        products = served.info.products
        return {
            "demand_date": products and str(products.demand_date),
            "partition_date": str(served.info.partition_date),
        }

    def _product(self, client: str, served: Served, product_id: bytes) -> tuple[int, bytes]:
        try:
            text = product_id.decode()
        except UnicodeDecodeError:
            return 400, _error("the product id is not UTF-8")
        if not 0 < len(product_id) <= MAX_USER_ID:
            return 400, _error(f"the product id must be 1 to {MAX_USER_ID} bytes")
        answer = {"client": client, **self._product_answer(served, text), **self._products_tail(served)}
        return 200 if answer["found"] else 404, json.dumps(answer).encode()

    def _batch_products(self, client: str, key: bytes | None, body: bytes) -> tuple[int, bytes]:
        ids = _requested_ids(body, "product_ids")
        if isinstance(ids, tuple):
            return ids

        def answer(served: Served) -> tuple[int, bytes]:
            products = [self._product_answer(served, product_id) for product_id in ids]
            return 200, json.dumps(
                {"client": client, "products": products, **self._products_tail(served)}
            ).encode()

        return self._guarded(client, key, answer)


def _requested_ids(body: bytes, field: str) -> list[str] | tuple[int, bytes]:
    """The ids of a batch request's body ``{field: [...]}``, or the error answer (status, body)."""
    try:
        ids = json.loads(body)[field]
        if not isinstance(ids, list) or not all(
            isinstance(i, str) and 0 < len(i.encode()) <= MAX_USER_ID for i in ids
        ):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return 400, _error(f'the body must be {{"{field}": [...]}}: strings of 1 to {MAX_USER_ID} bytes')
    if len(ids) > BATCH_LIMIT:
        return 413, _error(f"at most {BATCH_LIMIT} ids per request")
    return ids


def _error(message: str, **fields: str) -> bytes:
    return json.dumps({"error": message, **fields}).encode()


class HttpConnection(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive and pipelining, answered in order."""

    def __init__(self, service: LookupService) -> None:
        self.service = service
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, _error("malformed HTTP request"), keep_alive=False)

    def on_message_begin(self) -> None:
        self.started = time.perf_counter()
        self.url = b""
        self.key: bytes | None = None
        self.body: list[bytes] = []
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 9 and name.lower() == b"x-api-key":
            self.key = value

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size <= BODY_LIMIT:
            self.body.append(body)

    def on_message_complete(self) -> None:
        service = self.service
        if self.body_size > BODY_LIMIT:
            status, payload, route, client, users = 413, _error("request body over 1 MiB"), "other", "", 0
        else:
            status, payload, route, client, users = service.handle(
                self.parser.get_method(), self.url, self.key, b"".join(self.body)
            )
        self._send(status, payload, self.parser.should_keep_alive())
        seconds = time.perf_counter() - self.started
        service.metrics.observe(route, status, seconds)
        # No user id, key or address: what was asked, of which client, how it went and how fast. The
        # fields are known safe for JSON (the client is checked against the served ones), so the line
        # is formatted directly: json.dumps per request cost a tenth of a lookup.
        client = client if client in service.clients else ""
        service.logs.stream.write(
            f'{{"severity":"{"ERROR" if status >= 500 else "INFO"}","route":"{route}","client":"{client}",'
            f'"status":{status},"users":{users},"latency_ms":{seconds * 1000:.3f}}}\n'
        )

    def _send(self, status: int, payload: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            status,
            REASONS.get(status, b"Error"),
            len(payload),
        )
        self.transport.write(head + (b"\r\n" if keep_alive else b"connection: close\r\n\r\n") + payload)
        if not keep_alive:
            self.transport.close()


async def serve(
    service: LookupService, host: str, port: int, poll_seconds: float, started: asyncio.Future | None = None
) -> None:
    """Listen, then load and keep polling the snapshots; ``started`` gets the bound port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpConnection(service), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    service.logs.write(
        {
            "severity": "INFO",
            "message": "listening",
            "host": host,
            "port": bound,
            "clients": sorted(service.clients),
        }
    )
    if started is not None:
        started.set_result(bound)
    async with server:
        try:
            await asyncio.gather(
                server.serve_forever(), service.poll(poll_seconds), _flush_every(service.logs, 1.0)
            )
        finally:
            service.logs.stream.flush()


async def _flush_every(logs: JsonLines, seconds: float) -> None:
    # Lines are buffered (a write per request would be a system call per request) and flushed here.
    while True:
        await asyncio.sleep(seconds)
        logs.stream.flush()
