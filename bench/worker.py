"""What runs inside a benchmark's child process: ``python -m bench.worker TASK SPEC.json RESULT.json``.

Tasks:
  materialize  Dagster runs of the real graph (``materialize`` on a persistent instance under
               $DAGSTER_HOME), as one range run or one run per day, with the time of each asset's
               per-day work, each step's duration and the run's wall time.
  bare         The feature SQL (the same transpiled queries) straight on one DuckDB connection.
  pandas       The same features in pandas, from the day's Parquet files.
  train        LightGBM training on the first N rows of a training set, and scoring users.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

# Columns summed to check that the three feature implementations agree.
CHECKSUM_COLUMNS = {
    "user_daily_activity": ["events", "sessions", "views", "clicks", "carts", "purchases", "revenue"],
    "user_profile": ["active_days", "events", "sessions", "purchases", "revenue", "first_purchase_date"],
    "user_features": [
        "tenure_days",
        "days_since_last_purchase",
        "lifetime_purchases",
        "lifetime_revenue",
        "sessions_7d",
        "purchases_28d",
        "revenue_90d",
        "active_days_90d",
        "average_order_value",
        "cart_conversion_28d",
        "active_day_share",
    ],
}
FEATURE_TABLES = tuple(CHECKSUM_COLUMNS)

# asset -> day -> seconds spent in that day's work (the callable each asset hands to for_each_day;
# an equal share of the one for_range call of an asset that writes the days at once)
WORK: dict[str, dict[str, float]] = defaultdict(dict)
# asset -> the highest resident set sampled from the start of its days until the next asset starts
PEAK_RSS: dict[str, int] = defaultdict(int)
_current_asset = ["(run start)"]


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sample_rss(stop: threading.Event, interval: float = 0.02) -> None:
    while not stop.wait(interval):
        asset = _current_asset[0]
        PEAK_RSS[asset] = max(PEAK_RSS[asset], _resident_bytes())


def _instrument_assets() -> None:
    """Time each asset's per-day work by wrapping ``for_each_day`` in every asset module that uses it."""
    import pkgutil

    import karte_assets.assets

    for info in pkgutil.iter_modules(karte_assets.assets.__path__):
        module = importlib.import_module(f"karte_assets.assets.{info.name}")
        original = getattr(module, "for_each_day", None)
        if original is None or info.name == "common":
            continue

        def timed_for_each_day(*args, _original=original, **kwargs):
            *head, write = args
            asset = head[0].asset_key.to_user_string()
            _current_asset[0] = asset

            def timed(day):
                started = time.perf_counter()
                try:
                    return write(day)
                finally:
                    WORK[asset][day.isoformat()] = time.perf_counter() - started

            return _original(*head, timed, **kwargs)

        module.for_each_day = timed_for_each_day

    # An asset that writes the run's days in one statement: each day gets an equal share of it.
    import karte_assets.assets.common as common

    for module in (importlib.import_module(f"karte_assets.assets.{n}") for n in ("activity", "events")):
        if getattr(module, "for_range", None) is common.for_range:

            def timed_for_range(context, warehouse, write, _original=common.for_range):
                asset = context.asset_key.to_user_string()
                _current_asset[0] = asset

                def timed(days):
                    started = time.perf_counter()
                    try:
                        return write(days)
                    finally:
                        share = (time.perf_counter() - started) / len(days)
                        WORK[asset].update({day.isoformat(): share for day in days})

                return _original(context, warehouse, timed)

            module.for_range = timed_for_range


def materialize_task(spec: dict) -> dict:
    started = time.perf_counter()
    if spec.get("duckdb_memory_limit"):
        # Read once, when karte_assets is imported below: every DuckDB connection of the run gets it.
        os.environ["KARTE_DUCKDB_MEMORY_LIMIT"] = spec["duckdb_memory_limit"]
    from dagster import DagsterInstance, materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from karte_assets.definitions import ASSETS, local_resources
    from karte_assets.settings import current_settings

    imports = time.perf_counter() - started
    _instrument_assets()
    instance = DagsterInstance.get()
    resources = local_resources(current_settings())
    selection = spec.get("selection")
    ops = (spec.get("run_config") or {}).get("ops", {})
    if selection:
        ops = {name: op for name, op in ops.items() if name in selection}
    start, end = dt.date.fromisoformat(spec["start"]), dt.date.fromisoformat(spec["end"])
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    ranges = [(start, end)] if spec.get("mode", "range") == "range" else [(day, day) for day in days]
    runs = []
    stop = threading.Event()
    threading.Thread(target=_sample_rss, args=(stop,), daemon=True).start()
    for first, last in ranges:
        WORK.clear()
        PEAK_RSS.clear()
        _current_asset[0] = "(run start)"
        if first == last:
            kwargs = {"partition_key": first.isoformat()}
        else:
            kwargs = {
                "tags": {
                    ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                    ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                }
            }
        run_started = time.perf_counter()
        result = materialize(
            ASSETS,
            resources=resources,
            run_config={"ops": ops},
            instance=instance,
            selection=selection,
            **kwargs,
        )
        wall = time.perf_counter() - run_started
        steps = {
            event.step_key: event.event_specific_data.duration_ms / 1000
            for event in result.get_step_success_events()
        }
        runs.append(
            {
                "start": first.isoformat(),
                "end": last.isoformat(),
                "run_id": result.run_id,
                "wall": wall,
                "steps": steps,
                "work": {asset: dict(days) for asset, days in WORK.items()},
                "peak_rss_by_asset": dict(PEAK_RSS),
            }
        )
    stop.set()
    out = {"imports": imports, "runs": runs}
    if spec.get("checksum_day"):
        out["checksums"] = duckdb_checksums(
            str(current_settings().warehouse_path), dt.date.fromisoformat(spec["checksum_day"])
        )
    if spec.get("row_counts"):
        out["row_counts"] = row_counts(str(current_settings().warehouse_path), spec["row_counts"])
    return out


def row_counts(db: str, tables: list[str]) -> dict[str, dict[str, int]]:
    """Rows per day of each table, from the partition log."""
    import duckdb

    with duckdb.connect(db, read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_name, CAST(partition_date AS VARCHAR), row_count FROM partition_log "
            "WHERE list_contains($tables, table_name)",
            {"tables": tables},
        ).fetchall()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for table, day, count in rows:
        counts[table][day] = count
    return counts


def duckdb_checksums(db: str, day: dt.date, prefix: str = "") -> dict[str, dict[str, float]]:
    import duckdb

    sums = {}
    with duckdb.connect(db, read_only=True) as connection:
        for table, columns in CHECKSUM_COLUMNS.items():
            selects = ", ".join(
                f"count({c})" if c.endswith("_date") else f"CAST(sum({c}) AS DOUBLE)" for c in columns
            )
            values = connection.execute(
                f"SELECT count(*), {selects} FROM {prefix}{table} WHERE partition_date = $day", {"day": day}
            ).fetchone()
            sums[table] = dict(zip(["rows", *columns], map(float, values), strict=True))
    return sums


def frame_checksums(frames: dict) -> dict[str, dict[str, float]]:
    sums = {}
    for table, columns in CHECKSUM_COLUMNS.items():
        frame = frames[table]
        values = {"rows": float(len(frame))}
        for c in columns:
            values[c] = float(frame[c].count() if c.endswith("_date") else frame[c].sum())
        sums[table] = values
    return sums


def bare_task(spec: dict) -> dict:
    """The transpiled feature SQL, straight on one connection: the practical limit."""
    import duckdb

    from karte_assets.sql import bind, duckdb_sql

    day = dt.date.fromisoformat(spec["day"])
    params = {
        "partition_date": day,
        # user_daily_activity covers a range of days (its rows carry their day); here the one day.
        "first_date": day,
        "last_date": day,
        "audience_days": 0,
        "session_gap_seconds": spec.get("session_gap_seconds", 1800),
    }
    times = {}
    started = time.perf_counter()
    connection = duckdb.connect(spec["db"])
    connection.execute("SET TimeZone = 'UTC'")
    # user_profile and user_features read their own day before (carried state): the tables must exist.
    connection.execute(duckdb_sql("user_profile_table"))
    connection.execute(duckdb_sql("user_features_table"))
    for table in FEATURE_TABLES:
        query_started = time.perf_counter()
        stamped = (
            duckdb_sql(table)
            if table == "user_daily_activity"
            else f"SELECT CAST($partition_date AS DATE) AS partition_date, q.* FROM ({duckdb_sql(table)}) AS q"
        )
        verb = (
            f"INSERT INTO {table} BY NAME"
            if table in ("user_profile", "user_features")
            else f"CREATE TABLE {table} AS"
        )
        bound = bind(table, params)
        if table != "user_daily_activity":
            bound["partition_date"] = day
        connection.execute(f"{verb} {stamped}", bound)
        times[table] = time.perf_counter() - query_started
    connection.close()  # includes the checkpoint that makes the tables durable, as every asset write does
    total = time.perf_counter() - started
    return {"total": total, "times": times, "checksums": duckdb_checksums(spec["db"], day)}


def pandas_task(spec: dict) -> dict:
    import glob

    from bench import pandas_features as pf
    from karte_assets.partitions import day_window

    day = dt.date.fromisoformat(spec["day"])
    start, end = day_window(day, spec["timezone"])
    times = {}
    started = time.perf_counter()
    events = pf.read_events(sorted(glob.glob(spec["files"])), start, end)
    times["read"] = time.perf_counter() - started
    step = time.perf_counter()
    activity = pf.daily_activity(events)
    times["user_daily_activity"] = time.perf_counter() - step
    step = time.perf_counter()
    profile = pf.profile(None, activity, day)
    times["user_profile"] = time.perf_counter() - step
    step = time.perf_counter()
    features = pf.features(profile, {day: activity}, day)
    times["user_features"] = time.perf_counter() - step
    total = time.perf_counter() - started
    frames = {"user_daily_activity": activity, "user_profile": profile, "user_features": features}
    return {"total": total, "times": times, "events": len(events), "checksums": frame_checksums(frames)}


def train_task(spec: dict) -> dict:
    from bench.training import train_task as run

    return run(spec)


def feature_parts_task(spec: dict) -> dict:
    """What user_features costs on given days of a warehouse: its 7/28/90-day windows alone, the
    whole query, and the number of activity rows the windows read: the days entering and leaving
    them (read-only, into temp tables)."""
    import duckdb

    from karte_assets.sql import bind, duckdb_sql

    query = duckdb_sql("user_features")
    windows = query[: query.index("SELECT\n  p.client_id")] + "SELECT * FROM windows"
    parts = {}
    with duckdb.connect(spec["db"], read_only=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for day in spec["days"]:
            # The audience rule off (0): every user ever seen, as the graph's default.
            params = bind("user_features", {"partition_date": dt.date.fromisoformat(day), "audience_days": 0})
            times = {}
            for name, select in (("windows", windows), ("query", query)):
                runs = []
                for _ in range(3):
                    started = time.perf_counter()
                    connection.execute(f"CREATE OR REPLACE TEMP TABLE bench_part AS {select}", params)
                    runs.append(time.perf_counter() - started)
                times[name] = sorted(runs)[1]
            (times["activity_rows"],) = connection.execute(
                "SELECT count(*) FROM user_daily_activity WHERE partition_date IN "
                "($partition_date, $partition_date - 7, $partition_date - 28, $partition_date - 90)",
                {"partition_date": params["partition_date"]},
            ).fetchone()
            parts[day] = times
    return {"days": parts}


def peak_rss_bytes() -> int:
    """The peak resident set of this process or of any child it waited for.

    VmHWM, not getrusage(RUSAGE_SELF): after exec, ru_maxrss still counts the parent's resident
    set at fork time.
    """
    import resource

    status = Path("/proc/self/status").read_text()
    own = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024


TASKS = {
    "materialize": materialize_task,
    "bare": bare_task,
    "pandas": pandas_task,
    "train": train_task,
    "feature_parts": feature_parts_task,
}

if __name__ == "__main__":
    task, spec_path, result_path = sys.argv[1:4]
    result = TASKS[task](json.loads(Path(spec_path).read_text()))
    result["peak_rss"] = peak_rss_bytes()
    Path(result_path).write_text(json.dumps(result, default=str))
