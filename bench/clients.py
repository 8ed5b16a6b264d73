"""Many clients: the code location's load time with N client instances, and one day of N small shops.

    uv run python -m bench.run --part clients --client-counts 1,10,100,1000

Load: a copy of the package with N ``defs/<shop>/defs.yaml`` instances, imported in a fresh
process (what ``dg check defs`` and the code server do). Day: the whole graph for the first day of
N synthetic shops (``default`` plus N - 1 others, a few users each) in ONE run, as the daily
schedule launches it; warehouse operations are counted (each opens one DuckDB connection: a
partition replace is one transaction, a query one statement). The first day trains no model (no
labelled history yet); the training batch is one job per trainable shop (see DESIGN.md).
"""

from __future__ import annotations

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


def one_day(work: Path, count: int) -> dict:
    """One run of the whole graph for the first day of ``count`` small shops."""
    from dagster import DagsterInstance, materialize

    from karte_assets.clients import LoyaltyClient
    from karte_assets.definitions import ASSETS
    from karte_assets.environments import local_resources
    from karte_assets.resources.warehouse import DuckDBWarehouse
    from karte_assets.settings import load_settings

    opened = []  # one entry per warehouse operation (a resource is a frozen model: no counter field)

    class CountingWarehouse(DuckDBWarehouse):
        def connect(self):
            opened.append(1)
            return super().connect()

    home = work / f"clients-{count}"
    shutil.rmtree(home, ignore_errors=True)
    settings = load_settings({**os.environ, "KARTE_HOME": str(home)})
    shops = [
        LoyaltyClient(client_id=f"shop{n:04d}", synthetic_seed=n, synthetic_users_per_day=USERS_PER_DAY)
        for n in range(1, count)
    ]
    resources = local_resources(settings, shops)
    resources["warehouse"] = CountingWarehouse(path=str(settings.warehouse_path))
    day = settings.partitions_start.isoformat()
    started = time.perf_counter()
    result = materialize(
        ASSETS,
        resources=resources,
        partition_key=day,
        instance=DagsterInstance.ephemeral(),
        run_config={"ops": {"raw_events": {"config": {"synthetic_new_users_per_day": USERS_PER_DAY}}}},
    )
    seconds = time.perf_counter() - started
    assert result.success
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        scored = connection.execute(
            "SELECT count(DISTINCT client_id), count(*) FROM loyalty_scores"
        ).fetchone()
    return {
        "clients": count,
        "runs": 1,
        "warehouse_operations": len(opened),
        "day_seconds": seconds,
        "clients_scored": scored[0],
        "users_scored": scored[1],
    }


def run(work: Path, counts: list[int], log: Callable[[str], None]) -> dict:
    rows = []
    for count in counts:
        load = load_seconds(count)
        log(f"clients {count}: code location loads in {load:.1f}s")
        day = one_day(work, count)
        log(
            f"clients {count}: one day in {day['day_seconds']:.1f}s, {day['runs']} run, "
            f"{day['warehouse_operations']} warehouse operations, {day['users_scored']} users scored"
        )
        rows.append({"load_seconds": load, **day})
    return {"rows": rows}
