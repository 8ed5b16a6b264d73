"""The Redis peer of the serving benchmark: the same route answered from Redis, by a minimal handler.

The same HTTP layer as the lookup service (karte_assets/serving/server.py's HttpConnection), so
the comparison is the store: each lookup is a GET on one persistent Redis connection, a blocking
loopback round trip in the RESP protocol (https://redis.io/docs/latest/develop/reference/protocol-spec/),
the way a minimal handler would call it. It checks the API key and writes the access log as the
service does, so that the two differ in the lookup only. Keys are ``<client>:<user_id>``, values ``<score>|<tier>``.

    python -m bench.serving_redis --redis-port P --port Q --model-version V --day D
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
from pathlib import Path

from karte_assets.serving.metrics import Metrics
from karte_assets.serving.server import ApiKeys, HttpConnection, JsonLines


class Redis:
    """GET over one socket; enough of RESP for bulk-string replies."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.socket.makefile("rb")

    def get(self, key: bytes) -> bytes | None:
        self.socket.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        header = self.reader.readline()
        if header.startswith(b"$-1"):
            return None
        if not header.startswith(b"$"):
            raise RuntimeError(f"Redis answered {header!r}")
        value = self.reader.read(int(header[1:]) + 2)
        return value[:-2]


class RedisLookups:
    """The service interface HttpConnection calls (handle, metrics, logs, clients), backed by Redis."""

    def __init__(self, redis: Redis, tail: bytes, logs: JsonLines, keys: ApiKeys) -> None:
        self.redis, self.tail, self.logs, self.keys = redis, tail, logs, keys
        self.metrics = Metrics()
        self.clients = frozenset({"default"})

    def handle(self, method, url, key, body):
        path = url.partition(b"?")[0]
        client, _, rest = path[len(b"/v1/clients/") :].partition(b"/")
        if not path.startswith(b"/v1/clients/") or not rest.startswith(b"users/"):
            return 404, b'{"error":"no such route"}', "other", "", 0
        if key is None or self.keys.client_of(key) != client.decode():  # the service's check, for a fair cost
            return 403, b'{"error":"forbidden"}', "lookup", "", 1
        user_id = rest[6:]
        value = self.redis.get(client + b":" + user_id)
        head = b'{"client":"' + client + b'","user_id":' + json.dumps(user_id.decode()).encode()
        if value is None:
            return (
                404,
                head + b',"error":"unknown user","found":false,"coupon_tier":"none"' + self.tail,
                "lookup",
                "",
                1,
            )
        score, _, tier = value.partition(b"|")
        body = head + b',"found":true,"loyal_score":' + score + b',"coupon_tier":"' + tier + b'"' + self.tail
        return 200, body, "lookup", "", 1


async def main(args: argparse.Namespace) -> None:
    tail = f',"model_version":"{args.model_version}","partition_date":"{args.day}"}}'.encode()
    with Path(args.access_log).open("w") as log:
        keys = ApiKeys(os.environ["KARTE_SERVING_API_KEYS"], "$KARTE_SERVING_API_KEYS")
        service = RedisLookups(Redis(args.redis_port), tail, JsonLines(log), keys)
        server = await asyncio.get_running_loop().create_server(
            lambda: HttpConnection(service), "127.0.0.1", args.port, backlog=1024
        )
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-version", required=True)
    parser.add_argument("--day", required=True)
    parser.add_argument("--access-log", required=True)
    import uvloop

    uvloop.run(main(parser.parse_args()))
