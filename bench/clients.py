"""Many clients: the code location's load time with N client instances, and one day of N small shops.

    uv run python -m bench.run --part clients --client-counts 1,10,100,1000 --training-counts 10,100

Load: a copy of the package with N ``defs/<shop>/defs.yaml`` instances, imported in a fresh
process (what ``dg check defs`` and the code server do). Day: the whole graph for the first day of
N synthetic shops (``default`` plus N - 1 others, a few users each) in ONE run, as the daily
schedule launches it; warehouse operations are counted (each opens one DuckDB connection: a
partition replace is one transaction, a query one statement). The first day trains no model (no
labelled history yet); the training batch is one job per trainable shop (see DESIGN.md).
Training day: N shops with two weeks of history (one single-run backfill, not timed), then the one
day on which every shop's first model is due, timed: runs, statements, models trained, wall.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOAD = "import time; t = time.perf_counter(); import karte_assets.definitions as d; print(time.perf_counter() - t)"
USERS_PER_DAY = 5.0
# The tests' fast graph (karte_assets_tests/graph.py): 40 new users a shop a day and a 7-day label
# horizon give each shop labelled snapshots, and its first model, on the 15th day.
TRAINING_USERS_PER_DAY = 40.0
HISTORY_DAYS = 14
TRAINING_CONFIG = {
    "ops": {
        "raw_events": {"config": {"synthetic_new_users_per_day": TRAINING_USERS_PER_DAY}},
        "loyalty_training_set": {
            "config": {"horizon_days": 7, "snapshot_every_days": 7, "min_history_days": 0, "max_snapshots": 4}
        },
        "loyalty_model": {"config": {"num_boost_round": 60, "min_data_in_leaf": 10}},
    }
}


def load_seconds(count: int) -> float:
    """Seconds to import the code location with ``count`` client instances in its defs folder."""
    with tempfile.TemporaryDirectory() as root:
        project = Path(root)
        shutil.copy(REPO / "pyproject.toml", project)
        shutil.copytree(
            REPO / "karte_assets", project / "karte_assets", ignore=shutil.ignore_patterns("__pycache__")
        )
        for number in range(1, count):
            folder = project / "karte_assets" / "defs" / f"shop{number:04d}"
            folder.mkdir()
            (folder / "defs.yaml").write_text(
                f"type: karte_assets.LoyaltyScoring\nattributes:\n  client_id: shop{number:04d}\n"
                f"  synthetic_seed: {number}\n  synthetic_users_per_day: {USERS_PER_DAY}\n"
            )
        env = {**os.environ, "PYTHONPATH": str(project), "KARTE_HOME": str(project / "karte")}
        done = subprocess.run(
            [sys.executable, "-c", LOAD], cwd=project, env=env, capture_output=True, text=True, check=True
        )
        return float(done.stdout.strip().splitlines()[-1])


class Shops:
    """A fresh $KARTE_HOME with ``count`` small shops (``default`` plus N - 1 others) and a
    warehouse that counts its operations (each opens one DuckDB connection: a partition replace is
    one transaction, a query one statement)."""

    def __init__(self, home: Path, count: int, users_per_day: float):
        from karte_assets.clients import LoyaltyClient
        from karte_assets.environments import local_resources
        from karte_assets.resources.warehouse import DuckDBWarehouse
        from karte_assets.settings import load_settings

        opened = self.opened = []  # a resource is a frozen model: no counter field

        class CountingWarehouse(DuckDBWarehouse):
            def connect(self):
                opened.append(1)
                return super().connect()

        shutil.rmtree(home, ignore_errors=True)
        self.settings = load_settings({**os.environ, "KARTE_HOME": str(home)})
        shops = [
            LoyaltyClient(client_id=f"shop{n:04d}", synthetic_seed=n, synthetic_users_per_day=users_per_day)
            for n in range(1, count)
        ]
        self.resources = local_resources(self.settings, shops)
        self.resources["warehouse"] = CountingWarehouse(path=str(self.settings.warehouse_path))

    def materialize(self, first: dt.date, last: dt.date, run_config: dict) -> float:
        """One run over [first, last] (a single-run backfill when they differ); its wall seconds."""
        from dagster import DagsterInstance, materialize
        from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

        from karte_assets.definitions import ASSETS

        one_day = {"partition_key": first.isoformat()}  # as the daily schedule launches it
        backfill = {
            "tags": {
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
            }
        }
        started = time.perf_counter()
        result = materialize(
            ASSETS,
            resources=self.resources,
            instance=DagsterInstance.ephemeral(),
            run_config=run_config,
            **(one_day if first == last else backfill),
        )
        assert result.success
        return time.perf_counter() - started

    def query(self, sql: str, day: dt.date) -> tuple:
        import duckdb

        with duckdb.connect(str(self.settings.warehouse_path), read_only=True) as connection:
            return connection.execute(sql, [day]).fetchone()


def one_day(work: Path, count: int) -> dict:
    """One run of the whole graph for the first day of ``count`` small shops."""
    shops = Shops(work / f"clients-{count}", count, USERS_PER_DAY)
    day = shops.settings.partitions_start
    config = {"ops": {"raw_events": {"config": {"synthetic_new_users_per_day": USERS_PER_DAY}}}}
    seconds = shops.materialize(day, day, config)
    scored = shops.query(
        "SELECT count(DISTINCT client_id), count(*) FROM loyalty_scores WHERE partition_date = ?", day
    )
    return {
        "clients": count,
        "runs": 1,
        "warehouse_operations": len(shops.opened),
        "day_seconds": seconds,
        "clients_scored": scored[0],
        "users_scored": scored[1],
    }


def training_day(work: Path, count: int) -> dict:
    """One run of the whole graph on the day every one of ``count`` shops trains its first model."""
    shops = Shops(work / f"clients-training-{count}", count, TRAINING_USERS_PER_DAY)
    first = shops.settings.partitions_start
    day = first + dt.timedelta(days=HISTORY_DAYS)
    history_seconds = shops.materialize(first, day - dt.timedelta(days=1), TRAINING_CONFIG)
    shops.opened.clear()
    seconds = shops.materialize(day, day, TRAINING_CONFIG)
    # A training job ran for each shop whose model is "trained" (accepted) or "rejected" (below the
    # quality gate: small shops' validation slices are small).
    trained = shops.query(
        "SELECT count(*) FILTER (WHERE status IN ('trained', 'rejected')), "
        "count(*) FILTER (WHERE status = 'trained') FROM loyalty_model WHERE partition_date = ?",
        day,
    )
    scored = shops.query("SELECT count(*) FROM loyalty_scores WHERE partition_date = ?", day)
    return {
        "clients": count,
        "runs": 1,
        "warehouse_operations": len(shops.opened),
        "trainings": trained[0],
        "models_accepted": trained[1],
        "day_seconds": seconds,
        "history_seconds": history_seconds,
        "users_scored": scored[0],
    }


def run(work: Path, counts: list[int], log: Callable[[str], None], training_counts: list[int] = ()) -> dict:
    rows, training = [], []
    for count in counts:
        load = load_seconds(count)
        log(f"clients {count}: code location loads in {load:.1f}s")
        day = one_day(work, count)
        log(
            f"clients {count}: one day in {day['day_seconds']:.1f}s, {day['runs']} run, "
            f"{day['warehouse_operations']} warehouse operations, {day['users_scored']} users scored"
        )
        rows.append({"load_seconds": load, **day})
    for count in training_counts:
        day = training_day(work, count)
        log(
            f"clients {count}: training day in {day['day_seconds']:.1f}s, {day['runs']} run, "
            f"{day['warehouse_operations']} warehouse operations, {day['trainings']} trainings "
            f"({day['models_accepted']} models accepted), "
            f"{day['users_scored']} users scored (history of {HISTORY_DAYS} days: {day['history_seconds']:.1f}s)"
        )
        training.append(day)
    return {"rows": rows, "training": training}
