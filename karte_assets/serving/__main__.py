"""``python -m karte_assets.serving``: run the lookup service (``make serve``; the serving image)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
import tempfile
from pathlib import Path

from karte_assets.serving.server import ApiKeys, JsonLines, LookupService, serve
from karte_assets.serving.snapshot import check_client
from karte_assets.serving.store import LocalSnapshotStore, SnapshotStore

KEYS_VARIABLE = "KARTE_SERVING_API_KEYS"


def snapshot_store(location: str) -> SnapshotStore:
    """``gs://bucket/prefix`` (the GCS model store's bucket and prefix) or a model store directory."""
    if location.startswith("gs://"):
        # Imported here: the Cloud Storage client takes a while to import, and local serving never needs it.
        from google.cloud import storage

        from karte_assets.serving.gcs_store import GcsSnapshotStore

        bucket, _, prefix = location.removeprefix("gs://").partition("/")
        return GcsSnapshotStore(storage.Client().bucket(bucket), prefix)
    return LocalSnapshotStore(Path(location))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m karte_assets.serving", description=__doc__)
    parser.add_argument(
        "--store",
        default=os.environ.get("KARTE_SERVING_STORE"),
        required="KARTE_SERVING_STORE" not in os.environ,
        help="the model store: a directory ($KARTE_HOME/models) or gs://bucket/prefix (KARTE_SERVING_STORE)",
    )
    parser.add_argument(
        "--clients",
        default=os.environ.get("KARTE_SERVING_CLIENTS", ""),
        help="comma-separated clients to serve (KARTE_SERVING_CLIENTS); by default those with API keys",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", "8080")), help="PORT, as Cloud Run sets it"
    )
    parser.add_argument(
        "--auth",
        choices=["keys", "none"],
        default=os.environ.get("KARTE_SERVING_AUTH", "keys"),
        help=f"keys: X-Api-Key per client from ${KEYS_VARIABLE}; none: on loopback, or behind Cloud Run IAM",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=float(os.environ.get("KARTE_SERVING_POLL_SECONDS", "30"))
    )
    parser.add_argument("--default-tier", default="none", help="the tier an unknown user gets")
    parser.add_argument(
        "--workdir", default=None, help="where GCS snapshots are downloaded (default: a temporary folder)"
    )
    return parser.parse_args(argv)


def build_service(args: argparse.Namespace, environ=os.environ) -> LookupService:
    keys = None
    if args.auth == "keys":
        if not environ.get(KEYS_VARIABLE):
            raise SystemExit(f"--auth keys needs ${KEYS_VARIABLE} (JSON client -> key); or --auth none")
        keys = ApiKeys(environ[KEYS_VARIABLE], f"${KEYS_VARIABLE}")
    clients = [check_client(c.strip()) for c in args.clients.split(",") if c.strip()] or (
        keys.clients if keys else []
    )
    if not clients:
        raise SystemExit("no client to serve: --clients (KARTE_SERVING_CLIENTS) or API keys name them")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="karte-serving-"))
    return LookupService(
        snapshot_store(args.store), clients, keys, workdir, args.default_tier, JsonLines(sys.stdout)
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # auth=none on a public address is only for Cloud Run with IAM, which is said explicitly.
    if (
        args.auth == "none"
        and not ipaddress.ip_address(args.host).is_loopback
        and os.environ.get("KARTE_SERVING_IAM") != "1"
    ):
        raise SystemExit(
            "--auth none binds only loopback, unless KARTE_SERVING_IAM=1 (Cloud Run IAM checks callers)"
        )
    service = build_service(args)
    try:
        import uvloop  # the faster event loop where installed (the serving image has it)

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(until_terminated(serve(service, args.host, args.port, args.poll_seconds)))


async def until_terminated(serving) -> None:
    """Run ``serving`` until SIGTERM (Cloud Run's stop signal), then return: the logs get flushed."""
    task = asyncio.ensure_future(serving)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    main()
