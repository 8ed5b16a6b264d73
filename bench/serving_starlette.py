"""The framework peer of the serving benchmark: the same lookup as a Starlette route under uvicorn.

Starlette and uvicorn (with httptools and uvloop) are what Dagster's own webserver runs on, so they
are in the environment already; the route does what the service's does (API key, snapshot lookup,
the same JSON), so the two differ in the HTTP stack only.

    python -m bench.serving_starlette --store DIR --port P
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from karte_assets.serving.server import ApiKeys
from karte_assets.serving.snapshot import Snapshot
from karte_assets.serving.store import LocalSnapshotStore


def app(store: Path) -> Starlette:
    snapshots = LocalSnapshotStore(store)
    info, _ = snapshots.latest("default")
    snapshot = Snapshot(snapshots.local_copy(info, store), info)
    keys = ApiKeys(os.environ["KARTE_SERVING_API_KEYS"], "$KARTE_SERVING_API_KEYS")
    tail = f',"model_version":"{info.model_version}","partition_date":"{info.partition_date}"}}'

    async def lookup(request):
        client = request.path_params["client"]
        key = request.headers.get("x-api-key")
        if key is None or keys.client_of(key.encode()) != client:
            return Response(b'{"error":"forbidden"}', 403, media_type="application/json")
        user_id = request.path_params["user_id"]
        found = snapshot.find(user_id.encode())
        head = f'{{"client":"{client}","user_id":{json.dumps(user_id)}'
        if found is None:
            body = head + ',"error":"unknown user","found":false,"coupon_tier":"none"' + tail
            return Response(body, 404, media_type="application/json")
        body = head + f',"found":true,"loyal_score":{found[0]!r},"coupon_tier":"{found[1]}"' + tail
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v1/clients/{client}/users/{user_id}", lookup)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app(Path(args.store)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
