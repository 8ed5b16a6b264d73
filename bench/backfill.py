"""Backfill: N days of history as one single-run backfill versus one run per day.

The daily data assets only (raw_events, user_daily_activity, user_profile, user_features): their
cost is what grows, or must not grow, with history. Training and scoring cost per model, not per
day of history; the scoring part measures them on the day-90 warehouse this part leaves behind.
Both modes read the same source, a glob over every day's files, as KARTE_EVENTS_SOURCE would be.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import data
from bench.child import fresh_home, graph_environment, run_child

SELECTION = ["raw_events", "user_daily_activity", "user_profile", "user_features"]
WEEK = 7


def home_for(work: Path, mode: str) -> Path:
    return work / "runs" / f"backfill-{mode}"


def run(work: Path, days: int, events_per_day: int, modes: list[str], log=print) -> dict:
    events = data.history(work, days, events_per_day, log)
    first, last = events.dates()[0], events.dates()[-1]
    result: dict = {
        "days": days,
        "events_per_day_target": events_per_day,
        "events": events.events,
        "users": events.users,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "modes": {},
    }
    for mode in modes:
        home = home_for(work, mode)
        fresh_home(home)
        env = graph_environment(home, first.isoformat(), data.TIMEZONE)
        log(f"backfill {days} days x ~{events_per_day:,} events, {mode} ...")
        child = run_child(
            "materialize",
            {
                "start": first.isoformat(),
                "end": last.isoformat(),
                "mode": mode,
                "selection": SELECTION,
                "run_config": {"ops": {"raw_events": {"config": {"source": events.all_glob()}}}},
                "row_counts": SELECTION,
            },
            env,
        )
        result["modes"][mode] = summarize(child, events.days)
        log(f"backfill {mode}: {result['modes'][mode]['wall']:.0f}s")
        if "feature_parts" not in result:
            parts = run_child(
                "feature_parts",
                {"db": str(home / "warehouse.duckdb"), "days": [first.isoformat(), last.isoformat()]},
                env,
            )
            result["feature_parts"] = parts.result["days"]
    return result


def summarize(child, days: list[str]) -> dict:
    runs = child.result["runs"]
    work: dict[str, dict[str, float]] = {}
    for run in runs:
        for asset, per_day in run["work"].items():
            work.setdefault(asset, {}).update(per_day)
    run_walls = {run["start"]: run["wall"] for run in runs}
    walls = sum(run["wall"] for run in runs)
    steps = sum(sum(run["steps"].values()) for run in runs)
    work_total = sum(sum(per_day.values()) for per_day in work.values())
    day_work = {day: sum(work[asset].get(day, 0.0) for asset in work) for day in days}

    def ratio(values: dict[str, float]) -> dict:
        first, last = days[0], days[-1]
        head = statistics.mean(values[d] for d in days[:WEEK])
        tail = statistics.mean(values[d] for d in days[-WEEK:])
        return {
            "first": values[first],
            "last": values[last],
            "ratio": values[last] / values[first],
            "first_week": head,
            "last_week": tail,
            "week_ratio": tail / head,
        }

    return {
        "runs": len(runs),
        "wall": walls,
        "process_wall": child.wall_seconds,
        "imports": child.result["imports"],
        "steps": steps,
        "work": work_total,
        "dagster": walls - steps,
        "in_step_other": steps - work_total,
        "peak_rss": child.peak_rss_bytes,
        "work_per_day": work,
        "run_walls": run_walls if len(runs) > 1 else {},
        "day_total": ratio(day_work),
        "per_asset": {asset: ratio(per_day) for asset, per_day in work.items()},
        "run_wall_ratio": ratio(run_walls) if len(runs) > 1 else None,
        "row_counts": child.result.get("row_counts", {}),
    }
