"""One daily partition end to end: raw event files to scores, the whole graph in one Dagster run.

A fresh warehouse whose history starts on the day, so the model asset records "skipped" (no
labelled history) and the scores come from the newest earlier model: the scoring part's model,
registered for the day before. Training is timed in the scoring part. Measured: the run's wall
time, the child process's peak RSS, the sum of the steps' durations (Dagster's event log) and
of each asset's per-day work; Dagster's own share is the run's wall time minus the steps.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb

from bench import data, scoring
from bench.child import fresh_home, graph_environment, run_child
from karte_assets.clients import DEFAULT_CLIENT
from karte_assets.duckdb_memory import DEFAULT_MEMORY_LIMIT
from karte_assets.sql import duckdb_sql


def _register_model(home: Path, model: Path, day: dt.date) -> None:
    """The bench model as the accepted model of ``day`` in the registry of ``home``'s warehouse."""
    target = home / "models" / "versions" / "loyalty-bench" / "model.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, target)
    with duckdb.connect(str(home / "warehouse.duckdb")) as connection:
        connection.execute(duckdb_sql("loyalty_model_table"))
        connection.execute(
            "INSERT INTO loyalty_model (partition_date, client_id, status, model_version, model_uri, trained_at) "
            "VALUES ($day, $client, 'trained', 'loyalty-bench', $uri, now()::TIMESTAMP)",
            {"day": day, "client": DEFAULT_CLIENT, "uri": str(target)},
        )


def run(
    work: Path,
    events_per_day: int,
    backfill_days: int,
    backfill_events: int,
    log=print,
    duckdb_memory_limit: str | None = None,
) -> dict:
    events = data.single_day(work, events_per_day, log)
    model = scoring.model_path(work)
    if not model.exists():
        log("the end-to-end day scores with the scoring part's model: running the scoring part first")
        scoring.run(work, backfill_days, backfill_events, [], False, log)
    day = data.FIRST_DAY
    home = work / "runs" / f"day-{data._label(events_per_day)}"
    fresh_home(home)
    _register_model(home, model, day - dt.timedelta(days=1))
    env = graph_environment(home, day.isoformat(), data.TIMEZONE)
    log(f"day {events_per_day:,}: raw events to scores ...")
    child = run_child(
        "materialize",
        {
            "start": day.isoformat(),
            "end": day.isoformat(),
            "run_config": {"ops": {"raw_events": {"config": {"source": events.day_glob(day)}}}},
            "row_counts": ["raw_events", "user_features", "loyalty_scores"],
            "duckdb_memory_limit": duckdb_memory_limit,
        },
        env,
    )
    run = child.result["runs"][0]
    work_seconds = {asset: sum(days.values()) for asset, days in run["work"].items()}
    steps = sum(run["steps"].values())
    rows = {table: days.get(day.isoformat()) for table, days in child.result["row_counts"].items()}
    n_events = events.events[day.isoformat()]
    disk = sum(f.stat().st_size for f in Path(events.directory).rglob("*.parquet"))
    return {
        "events": n_events,
        "users": events.users[day.isoformat()],
        "parquet_bytes": disk,
        "warehouse_bytes": (home / "warehouse.duckdb").stat().st_size,
        "wall": run["wall"],
        "process_wall": child.wall_seconds,
        "imports": child.result["imports"],
        "peak_rss": child.peak_rss_bytes,
        "peak_rss_by_asset": run["peak_rss_by_asset"],
        "steps": run["steps"],
        "work": work_seconds,
        "dagster": run["wall"] - steps,
        "in_step_other": steps - sum(work_seconds.values()),
        "rows": rows,
        "events_per_second": n_events / run["wall"],
        "duckdb_memory_limit": duckdb_memory_limit,
        "duckdb_memory_limit_default": f"default ({DEFAULT_MEMORY_LIMIT} of RAM)",
    }
