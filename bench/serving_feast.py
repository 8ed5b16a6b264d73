"""Feast's feature server as the serving benchmark's second peer (``feast`` is in the bench group).

A feature repository in a folder of its own: the local provider, a SQLite online store and a
file offline store (Feast's quickstart layout, https://docs.feast.dev/reference/online-stores/sqlite),
one entity ``user`` and one feature view ``loyalty`` (loyal_score, coupon_tier). The scores go
into the online store with ``FeatureStore.write_to_online_store``, and ``feast serve`` answers
``POST /get-online-features``
(https://docs.feast.dev/reference/feature-servers/python-feature-server).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa

REPO_YAML = """project: karte_bench
registry: registry.db
provider: local
online_store:
  type: sqlite
  path: online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""
FEATURES = ("loyalty:loyal_score", "loyalty:coupon_tier")


def load(repo: Path, table: pa.Table, day: dt.date) -> float:
    """A feature repository at ``repo`` holding ``table``'s users; the seconds the online write took."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, String

    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(REPO_YAML)
    frame = table.select(["user_id", "loyal_score", "coupon_tier"]).to_pandas()
    frame["event_timestamp"] = dt.datetime.combine(day, dt.time(), dt.UTC)
    frame.to_parquet(repo / "scores.parquet")
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="loyalty",
        entities=[user],
        ttl=dt.timedelta(days=2),
        schema=[Field(name="loyal_score", dtype=Float64), Field(name="coupon_tier", dtype=String)],
        source=FileSource(path=str(repo / "scores.parquet"), timestamp_field="event_timestamp"),
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])
    started = time.perf_counter()
    store.write_to_online_store("loyalty", frame)
    return time.perf_counter() - started


def command(repo: Path, port: int) -> list[str]:
    """``feast serve`` on loopback, one worker (one core, as the lookup service), no access log."""
    feast = str(Path(sys.executable).with_name("feast"))
    # --max-requests 0: gunicorn's default here (1000) would restart the worker during the run.
    return [
        *(feast, "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port)),
        *("-w", "1", "--max-requests", "0", "--no-access-log"),
    ]
