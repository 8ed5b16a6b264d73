"""Feature throughput: the feature assets through Dagster vs the bare SQL vs pandas, same day, same data.

"Feature assets" = user_daily_activity + user_profile + user_features for one day, materialised by
Dagster on a warehouse whose raw_events for that day are already loaded (the load is timed apart).
The warehouse starts on that day, so user_profile has no previous day and the 90-day window holds
one day: the backfill part measures how both grow with history.
"""

from __future__ import annotations

import math
import shutil
import statistics
from pathlib import Path

from bench import data
from bench.child import fresh_home, graph_environment, run_child
from bench.worker import FEATURE_TABLES

SELECTION = list(FEATURE_TABLES)


def agree(a: dict, b: dict, rel: float = 1e-9) -> list[str]:
    """The checksums where two implementations differ (empty when they agree)."""
    problems = []
    for table, sums in a.items():
        for column, value in sums.items():
            other = b[table][column]
            if not math.isclose(value, other, rel_tol=rel, abs_tol=1e-6):
                problems.append(f"{table}.{column}: {value} vs {other}")
    return problems


def run(work: Path, events_per_day: int, repeats: int, log=print) -> dict:
    events = data.single_day(work, events_per_day, log)
    day = data.FIRST_DAY
    home = work / "runs" / f"features-{data._label(events_per_day)}"
    fresh_home(home)
    env = graph_environment(home, day.isoformat(), data.TIMEZONE)
    log(f"features {events_per_day:,}: loading raw_events for {day} ...")
    load = run_child(
        "materialize",
        {
            "start": day.isoformat(),
            "end": day.isoformat(),
            "selection": ["raw_events"],
            "run_config": {"ops": {"raw_events": {"config": {"source": events.day_glob(day)}}}},
        },
        env,
    )
    warehouse = home / "warehouse.duckdb"
    template = home / "raw-only.duckdb"
    shutil.copy(warehouse, template)

    dagster_runs, bare_runs, pandas_runs = [], [], []
    for repeat in range(repeats):
        log(f"features {events_per_day:,}: repeat {repeat + 1}/{repeats}: dagster, bare duckdb, pandas")
        shutil.copy(template, warehouse)
        dagster_runs.append(
            run_child(
                "materialize",
                {
                    "start": day.isoformat(),
                    "end": day.isoformat(),
                    "selection": SELECTION,
                    "checksum_day": day.isoformat(),
                },
                env,
            )
        )
        bare_db = home / "bare.duckdb"
        shutil.copy(template, bare_db)
        bare_runs.append(run_child("bare", {"db": str(bare_db), "day": day.isoformat()}, env))
        bare_db.unlink()
        pandas_runs.append(
            run_child(
                "pandas",
                {"files": events.day_glob(day), "day": day.isoformat(), "timezone": data.TIMEZONE},
                env,
            )
        )

    dagster_checksums = dagster_runs[-1].result["checksums"]
    mismatches = {
        "bare": agree(dagster_checksums, bare_runs[-1].result["checksums"]),
        "pandas": agree(dagster_checksums, pandas_runs[-1].result["checksums"]),
    }
    if any(mismatches.values()):
        log(f"features {events_per_day:,}: IMPLEMENTATIONS DISAGREE: {mismatches}")

    def run_wall(child) -> float:
        return child.result["runs"][0]["wall"]

    dagster_wall = statistics.median(map(run_wall, dagster_runs))
    bare_wall = statistics.median(child.result["total"] for child in bare_runs)
    pandas_wall = statistics.median(child.result["total"] for child in pandas_runs)
    pandas_compute = statistics.median(
        child.result["total"] - child.result["times"]["read"] for child in pandas_runs
    )
    middle = sorted(dagster_runs, key=run_wall)[len(dagster_runs) // 2]
    n_events = events.events[day.isoformat()]
    load_run = load.result["runs"][0]
    return {
        "events": n_events,
        "users": events.users[day.isoformat()],
        "repeats": repeats,
        "raw_events_load": {
            "wall": load_run["wall"],
            "work": load_run["work"].get("raw_events", {}).get(day.isoformat()),
            "peak_rss": load.peak_rss_bytes,
        },
        "dagster": {
            "wall": dagster_wall,
            "all": [run_wall(c) for c in dagster_runs],
            "steps": middle.result["runs"][0]["steps"],
            "work": {a: sum(d.values()) for a, d in middle.result["runs"][0]["work"].items()},
            "imports": middle.result["imports"],
            "process_wall": middle.wall_seconds,
            "peak_rss": max(c.peak_rss_bytes for c in dagster_runs),
        },
        "bare": {
            "wall": bare_wall,
            "all": [c.result["total"] for c in bare_runs],
            "times": bare_runs[-1].result["times"],
            "peak_rss": max(c.peak_rss_bytes for c in bare_runs),
        },
        "pandas": {
            "wall": pandas_wall,
            "compute": pandas_compute,
            "all": [c.result["total"] for c in pandas_runs],
            "times": pandas_runs[-1].result["times"],
            "peak_rss": max(c.peak_rss_bytes for c in pandas_runs),
        },
        "checksums": dagster_checksums,
        "mismatches": mismatches,
        "rows": {t: dagster_checksums[t]["rows"] for t in FEATURE_TABLES},
        "dagster_vs_bare": dagster_wall / bare_wall,
        "pandas_vs_dagster": pandas_wall / dagster_wall,
        "pandas_compute_vs_dagster": pandas_compute / dagster_wall,
    }
