"""``make bench``: measure the graph on this machine and write BENCHMARKS.md.

    uv run python -m bench.run                      # the standard set (features, day, backfill, scoring, smallshop)
    uv run python -m bench.run --part features --sizes 1e6,1e7
    uv run python -m bench.run --part knee          # end-to-end days up to 50M events (long)
    uv run python -m bench.run --part serving       # the lookup service on 10M users vs Redis (bench/serving.py)
    uv run python -m bench.run --part smallshop     # a small shop's 273-day backfill vs bare
    uv run python -m bench.run --part anomaly       # 1M users' behaviour features and anomaly scores
    uv run python -m bench.run --part demand        # 10,000 products x 2 years forecast 28 days ahead
    uv run python -m bench.run --report             # only rewrite BENCHMARKS.md from stored results

Events are generated once into Parquet under ``<work>/events`` (default ``$KARTE_HOME/bench``)
and reused. Each part stores its result under ``<work>/results``; BENCHMARKS.md is rendered from
every stored result, each with the command, time and load it was measured at, so a heavy part
run once stays in the report when the standard set is run again.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import anomaly, backfill, clients, data, day, demand, features, report, scoring, serving, smallshop

REPO = Path(__file__).resolve().parent.parent
PARTS = (
    "features",
    "day",
    "backfill",
    "scoring",
    "knee",
    "serving",
    "smallshop",
    "anomaly",
    "clients",
    "demand",
)
STANDARD = ("features", "backfill", "scoring", "day", "smallshop", "clients")


def _sizes(text: str) -> list[int]:
    return [int(float(value)) for value in text.split(",") if value.strip()]


def _log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S} load {os.getloadavg()[0]:.2f}] {message}", flush=True)


def machine() -> dict:
    import platform

    import dagster
    import duckdb
    import lightgbm
    import pandas

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_kb / 1024**2,
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dagster": dagster.__version__,
        "pandas": pandas.__version__,
        "lightgbm": lightgbm.__version__,
    }


def _store(work: Path, name: str, result: dict, started: float, load_before: float) -> None:
    result["meta"] = {
        "machine": machine(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "uv run python -m bench.run " + shlex.join(sys.argv[1:]),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "seconds": time.perf_counter() - started,
    }
    path = work / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str))
    _log(f"stored {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--part",
        default="standard",
        help=f"comma-separated parts: {', '.join(PARTS)}; 'standard' = {','.join(STANDARD)}; 'all'",
    )
    parser.add_argument("--sizes", default="1e6,3e6,1e7", help="events per day of the feature comparison")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each feature implementation (median)")
    parser.add_argument("--day-sizes", default="1e7", help="events of the end-to-end day")
    parser.add_argument(
        "--knee-sizes", default="1e6,2.5e6,5e6,1e7,2e7,5e7", help="events of the end-to-end days of 'knee'"
    )
    parser.add_argument(
        "--duckdb-memory-limit",
        help="day/knee only: KARTE_DUCKDB_MEMORY_LIMIT of the run (e.g. 2GB or 5%%) instead of the default; "
        "stored as a separate result",
    )
    parser.add_argument("--backfill-days", type=int, default=90)
    parser.add_argument("--backfill-events", type=float, default=1e6, help="events per day of the backfill")
    parser.add_argument(
        "--backfill-modes", default="range,daily", help="range (one run), daily (a run per day)"
    )
    parser.add_argument(
        "--train-sizes", default="1e4,1e5,3e5,1e6", help="training rows of the training-time curve"
    )
    parser.add_argument("--anomaly-users", default="1e6", help="users of the anomaly day(s)")
    parser.add_argument(
        "--scoring-horizon-days",
        type=int,
        default=scoring.HORIZON_DAYS,
        help="scoring: the training set's horizon_days (shorter for a shorter --backfill-days)",
    )
    parser.add_argument(
        "--client-counts", default="1,10,100,1000", help="shops of the many-clients part (load time, one day)"
    )
    parser.add_argument(
        "--training-counts",
        default="10,100",
        help="shops of the many-clients part's training day (empty: none)",
    )
    parser.add_argument(
        "--smallshop-days", type=int, default=smallshop.DAYS, help="days of the small shop's history"
    )
    parser.add_argument(
        "--smallshop-customers", type=int, default=smallshop.CUSTOMERS, help="customers of the small shop"
    )
    parser.add_argument("--train-all", action="store_true", help="also train on the whole training set")
    parser.add_argument("--serving-users", type=float, default=1e7, help="users of the serving snapshot")
    parser.add_argument("--demand-products", type=int, default=10_000, help="products of the demand part")
    parser.add_argument(
        "--demand-days", type=int, default=730, help="days of sales history of the demand part"
    )
    parser.add_argument("--demand-threads", type=int, default=2, help="LightGBM threads of the demand part")
    parser.add_argument(
        "--work",
        default=str(Path(os.environ.get("KARTE_HOME", REPO / ".karte")) / "bench"),
        help="events, warehouses and results (default $KARTE_HOME/bench)",
    )
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--report", action="store_true", help="only render BENCHMARKS.md from stored results")
    args = parser.parse_args(argv)

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KARTE_BENCH_LOG", str(work / "bench.log"))
    parts = {"standard": list(STANDARD), "all": list(PARTS)}.get(args.part, args.part.split(","))
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    backfill_events = int(args.backfill_events)
    started_all = time.perf_counter()
    _log(f"parts {parts}; work directory {work}; child output in {os.environ['KARTE_BENCH_LOG']}")

    for part in [] if args.report else parts:
        if part == "features":
            for size in _sizes(args.sizes):
                started, load = time.perf_counter(), os.getloadavg()[0]
                result = features.run(work, size, args.repeats, _log)
                _store(work, f"features-{data._label(size)}", result, started, load)
        elif part in ("day", "knee"):
            for size in _sizes(args.day_sizes if part == "day" else args.knee_sizes):
                started, load = time.perf_counter(), os.getloadavg()[0]
                result = day.run(
                    work, size, args.backfill_days, backfill_events, _log, args.duckdb_memory_limit
                )
                suffix = f"-memory-{args.duckdb_memory_limit}" if args.duckdb_memory_limit else ""
                _store(work, f"day-{data._label(size)}{suffix}", result, started, load)
        elif part == "backfill":
            started, load = time.perf_counter(), os.getloadavg()[0]
            modes = [m for m in args.backfill_modes.split(",") if m]
            result = backfill.run(work, args.backfill_days, backfill_events, modes, _log)
            _store(work, "backfill", result, started, load)
        elif part == "serving":
            started, load = time.perf_counter(), os.getloadavg()[0]
            _store(work, "serving", serving.run(work, int(args.serving_users), 10, 8, _log), started, load)
        elif part == "smallshop":
            started, load = time.perf_counter(), os.getloadavg()[0]
            result = smallshop.run(work, _log, args.smallshop_days, args.smallshop_customers)
            _store(work, "smallshop", result, started, load)
        elif part == "clients":
            started, load = time.perf_counter(), os.getloadavg()[0]
            training_counts = _sizes(args.training_counts) if args.training_counts else []
            result = clients.run(work, _sizes(args.client_counts), _log, training_counts)
            _store(work, "clients", result, started, load)
        elif part == "scoring":
            started, load = time.perf_counter(), os.getloadavg()[0]
            result = scoring.run(
                work,
                args.backfill_days,
                backfill_events,
                _sizes(args.train_sizes),
                args.train_all,
                _log,
                args.scoring_horizon_days,
            )
            _store(work, "scoring", result, started, load)
        elif part == "anomaly":
            for users in _sizes(args.anomaly_users):
                started, load = time.perf_counter(), os.getloadavg()[0]
                result = anomaly.run(work, users, _log)
                _store(work, f"anomaly-{data._label(users)}", result, started, load)
        elif part == "demand":
            started, load = time.perf_counter(), os.getloadavg()[0]
            result = demand.run(args.demand_products, args.demand_days, 28, args.demand_threads, _log)
            _store(work, f"demand-{args.demand_products}", result, started, load)

    if not args.report:
        name = {tuple(STANDARD): "standard", ("knee",): "knee"}.get(tuple(parts), "-".join(parts))
        invocation = work / "invocations" / f"{name}.json"
        invocation.parent.mkdir(parents=True, exist_ok=True)
        invocation.write_text(
            json.dumps(
                {
                    "command": "uv run python -m bench.run " + shlex.join(sys.argv[1:]),
                    "seconds": time.perf_counter() - started_all,
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "load": os.getloadavg()[0],
                }
            )
        )
    Path(args.output).write_text(report.render(work))
    _log(f"wrote {args.output} ({time.perf_counter() - started_all:.0f}s)")


if __name__ == "__main__":
    main()
