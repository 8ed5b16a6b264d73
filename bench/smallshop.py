"""A small shop's whole history through the whole graph, against the same work done bare.

The shop has the shape of the CDNOW purchase log (23.6k customers who all buy for the first time in
the first 12 weeks, ~70k purchases, sparse repeat buying): here 25k customers over 273 days, made
by a buy-till-you-die generator (each customer buys at a gamma-distributed rate until an
exponentially distributed lifetime ends, the BG/NBD picture), one Parquet file with an event id.

Measured in one run of the graph (every asset, default config, one single-run backfill): the wall
time, each asset's per-day work (on ~250-event days that is the per-day overhead), the models the
retrain cadence trained. Against it, *bare*: one DuckDB query over the same file computing the
newest model's training set (the same 31 features of every snapshot, and the labels), and one
fit of the project's trainer on it; its rows are checked equal to the graph's training data.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import data
from bench.child import fresh_home, graph_environment, run_child
from karte_assets.clients import DEFAULT_CLIENT
from karte_assets.partitions import day_window

CUSTOMERS = 25_000
DAYS = 273
TARGET_EVENTS = 70_000
FIRST_PURCHASE_WEEKS = 12
SEED = 2024


def generate(path: Path, first_day: dt.date, customers: int = CUSTOMERS, days: int = DAYS) -> dict:
    """Write the shop's purchases to ``path`` (once); their count, customers and days."""
    if not path.exists():
        rng = np.random.default_rng(SEED)
        joined = rng.integers(0, min(FIRST_PURCHASE_WEEKS * 7, days), customers)
        # Rates scaled once so that the log has TARGET_EVENTS / CUSTOMERS purchases per customer.
        rate = rng.gamma(0.6, 1.0, customers)
        lifetime = rng.exponential(120.0, customers)
        alive = np.minimum(lifetime, days - 1 - joined)
        scale = (TARGET_EVENTS / CUSTOMERS - 1) * customers / float(np.sum(rate * alive))
        repeats = rng.poisson(rate * scale * alive)
        owner = np.repeat(np.arange(customers), 1 + repeats)
        offset = np.concatenate(
            [
                [0.0] if n == 0 else np.r_[0.0, rng.uniform(0, a, n)]
                for n, a in zip(repeats, alive, strict=True)
            ]
        )
        day_index = joined[owner] + np.floor(offset).astype(int)
        starts = np.array(
            [
                day_window(first_day + dt.timedelta(days=int(d)), data.TIMEZONE)[0].timestamp()
                for d in range(days)
            ]
        )
        seconds = starts[day_index] + rng.uniform(0, 86_400, len(owner))
        table = pa.table(
            {
                "event_id": [f"o{i}" for i in range(len(owner))],
                "user_id": [f"c{u:05d}" for u in owner],
                "event_ts": pa.array((seconds * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")),
                "event_name": pa.array(["purchase"] * len(owner)),
                "value": np.round(rng.lognormal(3.3, 0.8, len(owner)), 2),
            }
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.sort_by("event_ts"), path)
    with duckdb.connect() as connection:
        events, users = connection.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM read_parquet($f)", {"f": str(path)}
        ).fetchone()
    return {"events": events, "customers": users, "days": days}


# The graph's training data of one model (sql/training_data.sql), from the event file in one query:
# daily activity (sessions split after 30 idle minutes within a local day), then every snapshot's
# lifetime and 7/28/90-day features of every customer seen by then, and the label.
BARE_TRAINING_DATA = """
WITH events AS (
  SELECT user_id, event_ts, event_name, value, CAST(timezone($tz, event_ts) AS DATE) AS day
  FROM read_parquet($file)
),
gaps AS (
  SELECT *, date_diff('second', lag(event_ts) OVER (PARTITION BY user_id, day ORDER BY event_ts), event_ts) AS gap
  FROM events
),
activity AS (
  SELECT user_id, day,
    count(CASE WHEN gap IS NULL OR gap > 1800 THEN 1 END) AS sessions,
    count(CASE WHEN event_name = 'view' THEN 1 END) AS views,
    count(CASE WHEN event_name = 'cart' THEN 1 END) AS carts,
    count(CASE WHEN event_name = 'purchase' THEN 1 END) AS purchases,
    sum(CASE WHEN event_name = 'purchase' THEN value ELSE 0 END) AS revenue
  FROM gaps GROUP BY user_id, day
),
snapshots AS (SELECT unnest($snapshots::DATE[]) AS s),
f AS (
  SELECT s AS snapshot_date, user_id,
    s - min(day) AS tenure_days,
    s - max(day) AS days_since_last_seen,
    s - max(CASE WHEN purchases > 0 THEN day END) AS days_since_last_purchase,
    count(*) AS active_days, sum(sessions)::BIGINT AS sessions_all, sum(views)::BIGINT AS views_all,
    sum(carts)::BIGINT AS carts_all, sum(purchases)::BIGINT AS purchases_all, sum(revenue) AS revenue_all,
    count(CASE WHEN s - day < 7 THEN 1 END) AS active_days_7d,
    sum(CASE WHEN s - day < 7 THEN sessions ELSE 0 END)::BIGINT AS sessions_7d,
    sum(CASE WHEN s - day < 7 THEN views ELSE 0 END)::BIGINT AS views_7d,
    sum(CASE WHEN s - day < 7 THEN carts ELSE 0 END)::BIGINT AS carts_7d,
    sum(CASE WHEN s - day < 7 THEN purchases ELSE 0 END)::BIGINT AS purchases_7d,
    sum(CASE WHEN s - day < 7 THEN revenue ELSE 0 END) AS revenue_7d,
    count(CASE WHEN s - day < 28 THEN 1 END) AS active_days_28d,
    sum(CASE WHEN s - day < 28 THEN sessions ELSE 0 END)::BIGINT AS sessions_28d,
    sum(CASE WHEN s - day < 28 THEN views ELSE 0 END)::BIGINT AS views_28d,
    sum(CASE WHEN s - day < 28 THEN carts ELSE 0 END)::BIGINT AS carts_28d,
    sum(CASE WHEN s - day < 28 THEN purchases ELSE 0 END)::BIGINT AS purchases_28d,
    sum(CASE WHEN s - day < 28 THEN revenue ELSE 0 END) AS revenue_28d,
    count(CASE WHEN s - day < 90 THEN 1 END) AS active_days_90d,
    sum(CASE WHEN s - day < 90 THEN sessions ELSE 0 END)::BIGINT AS sessions_90d,
    sum(CASE WHEN s - day < 90 THEN views ELSE 0 END)::BIGINT AS views_90d,
    sum(CASE WHEN s - day < 90 THEN carts ELSE 0 END)::BIGINT AS carts_90d,
    sum(CASE WHEN s - day < 90 THEN purchases ELSE 0 END)::BIGINT AS purchases_90d,
    sum(CASE WHEN s - day < 90 THEN revenue ELSE 0 END) AS revenue_90d
  FROM snapshots JOIN activity ON activity.day <= s
  GROUP BY s, user_id
),
labels AS (
  SELECT s AS snapshot_date, user_id, count(*) > 0 AS bought
  FROM snapshots JOIN activity ON activity.purchases > 0 AND activity.day > s AND activity.day <= s + $horizon
  GROUP BY s, user_id
)
SELECT f.snapshot_date, CAST(coalesce(labels.bought, false) AS BIGINT) AS label, f.user_id,
  tenure_days, days_since_last_seen, days_since_last_purchase,
  active_days AS lifetime_active_days, sessions_all AS lifetime_sessions, views_all AS lifetime_views,
  carts_all AS lifetime_carts, purchases_all AS lifetime_purchases, revenue_all AS lifetime_revenue,
  CASE WHEN purchases_all > 0 THEN revenue_all / purchases_all END AS average_order_value,
  purchases_all / active_days AS purchases_per_active_day,
  active_days / (tenure_days + 1) AS active_day_share,
  active_days_7d, sessions_7d, views_7d, carts_7d, purchases_7d, revenue_7d,
  active_days_28d, sessions_28d, views_28d, carts_28d, purchases_28d, revenue_28d,
  active_days_90d, sessions_90d, views_90d, carts_90d, purchases_90d, revenue_90d,
  CASE WHEN carts_28d > 0 THEN purchases_28d / carts_28d END AS cart_conversion_28d
FROM f LEFT JOIN labels USING (snapshot_date, user_id)
ORDER BY f.snapshot_date, f.user_id
"""


def bare(file: Path, snapshots: list[dt.date], horizon_days: int) -> tuple[dict, object]:
    """The newest model's training set in one DuckDB query, and one fit of the project's trainer."""
    from karte_assets.assets.training import ModelConfig
    from karte_assets.training.loyalty import train_loyalty_model

    started, started_cpu = time.perf_counter(), time.process_time()
    with duckdb.connect() as connection:
        frame = connection.execute(
            BARE_TRAINING_DATA,
            {"file": str(file), "tz": data.TIMEZONE, "snapshots": snapshots, "horizon": horizon_days},
        ).df()
    query, query_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    config = ModelConfig()
    started, started_cpu = time.perf_counter(), time.process_time()
    model = train_loyalty_model(
        frame,
        horizon_days=horizon_days,
        params=config.lightgbm_params(),
        num_boost_round=config.num_boost_round,
        early_stopping_rounds=config.early_stopping_rounds,
        log=lambda message: None,
    )
    fit, fit_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    return {
        "query": query,
        "fit": fit,
        "cpu_seconds": query_cpu + fit_cpu,
        "rows": len(frame),
        "validation_auc": model.metrics["validation_auc"],
    }, frame


def _graph_training_data(db: Path, day: dt.date):
    with duckdb.connect(str(db), read_only=True) as connection:
        from karte_assets.sql import duckdb_sql

        params = {"partition_date": day, "client_ids": [DEFAULT_CLIENT]}
        return connection.execute(duckdb_sql("training_data"), params).df()


def _same_rows(graph, bare_frame) -> bool:
    graph = graph[bare_frame.columns].sort_values(["snapshot_date", "user_id"]).reset_index(drop=True)
    bare_frame = bare_frame.sort_values(["snapshot_date", "user_id"]).reset_index(drop=True)
    if len(graph) != len(bare_frame):
        return False
    for column in bare_frame.columns:
        left, right = graph[column], bare_frame[column]
        if left.dtype.kind in "fiu" or right.dtype.kind in "fiu":
            if not np.allclose(left.astype(float), right.astype(float), equal_nan=True, rtol=1e-9):
                return False
        elif not (left.astype(str) == right.astype(str)).all():
            return False
    return True


def run(work: Path, log=print, days: int = DAYS, customers: int = CUSTOMERS) -> dict:
    first = data.FIRST_DAY
    last = first + dt.timedelta(days=days - 1)
    file = work / "events" / "smallshop" / f"purchases-{customers}-{days}.parquet"
    shop = generate(file, first, customers, days)
    log(f"small shop: {shop['events']:,} purchases of {shop['customers']:,} customers over {days} days")
    home = work / "runs" / "smallshop"
    fresh_home(home)
    env = graph_environment(home, first.isoformat(), data.TIMEZONE)
    child = run_child(
        "materialize",
        {
            "start": first.isoformat(),
            "end": last.isoformat(),
            "run_config": {"ops": {"raw_events": {"config": {"source": str(file)}}}},
            "row_counts": ["raw_events", "loyalty_scores"],
        },
        env,
    )
    graph_run = child.result["runs"][0]
    db = home / "warehouse.duckdb"
    with duckdb.connect(str(db), read_only=True) as connection:
        models = connection.execute(
            "SELECT partition_date, status FROM loyalty_model WHERE status IN ('trained', 'rejected') "
            "ORDER BY partition_date"
        ).fetchall()
        newest = models[-1][0]
        snapshots = [
            d
            for (d,) in connection.execute(
                "SELECT DISTINCT snapshot_date FROM loyalty_training_set WHERE partition_date = $d ORDER BY 1",
                {"d": newest},
            ).fetchall()
        ]
        horizon = connection.execute(
            "SELECT max(horizon_days) FROM loyalty_training_set WHERE partition_date = $d", {"d": newest}
        ).fetchone()[0]
    bare_result, bare_frame = bare(file, snapshots, int(horizon))
    bare_result["same_rows"] = _same_rows(_graph_training_data(db, newest), bare_frame)
    work_per_day = graph_run["work"]
    per_asset = {
        asset: {
            "median": statistics.median(days.values()),
            "total": sum(days.values()),
            "day_1": days[first.isoformat()],
            "day_90": days.get((first + dt.timedelta(days=89)).isoformat(), float("nan")),
        }
        for asset, days in work_per_day.items()
    }
    # Each asset's whole step (Dagster's records of every partition and check included) per day of
    # the backfill: on days this small it is the per-day overhead (target 50 ms per asset).
    step_per_day = {asset: seconds / days for asset, seconds in graph_run["steps"].items()}
    for asset, seconds in step_per_day.items():
        log(f"  {asset}: {seconds * 1000:.0f} ms per day (step / {days} days)")
    return {
        "step_per_day": step_per_day,
        "shop": shop,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "wall": graph_run["wall"],
        "process_wall": child.wall_seconds,
        # CPU of the child (the run and its scoring/training subprocesses): on a shared machine the
        # wall time stretches with the others' load, the CPU seconds much less.
        "cpu_seconds": child.cpu_seconds,
        "steps": graph_run["steps"],
        "peak_rss": child.peak_rss_bytes,
        "models": [(str(day), status) for day, status in models],
        "newest_model_day": str(newest),
        "per_asset": per_asset,
        "bare": bare_result,
    }
