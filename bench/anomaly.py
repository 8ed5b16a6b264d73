"""The anomaly use case at scale: one day's behaviour features and scores for N users (target: 1M
users in under 60 s on 2 cores).

The day is made outside the timed section, straight into a DuckDB warehouse: N users with 1 +
Poisson(5) events in 1 + Poisson(0.3) sessions (gaps 1 s + Exp(40 s), the synthetic shop's),
plus the synthetic shop's planted bots and cheaters (0.1 % of N), and 28 days of
``user_daily_activity`` history in which a fifth of the users is active each day. Timed, with the
real SQL and code of the assets: the features query, reading them, scoring (Isolation Forest,
reasons for the flagged), writing the scores, and the exclusion audience.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from karte_assets.anomaly.scoring import DetectorSettings, score_client_day
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.synthetic import EVENT_NAMES, SyntheticWorld, _ids, planted_events, planted_user_ids

DAY = dt.date(2026, 6, 3)
HISTORY_DAYS = 28
PLANTED_SHARE = 0.001
FEATURE_PARAMS = {"client_id": "default", "session_gap_seconds": 1800, "days": HISTORY_DAYS}


def _day_events(users: int, rng: np.random.Generator) -> pa.Table:
    sessions = 1 + rng.poisson(0.3, users)
    s_user = np.repeat(np.arange(users), sessions)
    s_start = rng.uniform(0, 80_000, len(s_user))
    per_session = 1 + rng.poisson(5.0 / 1.3, len(s_user))
    e_session = np.repeat(np.arange(len(s_user)), per_session)
    gaps = 1.0 + rng.exponential(40.0, len(e_session))
    first = np.cumsum(per_session) - per_session
    offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - gaps[first], per_session)
    seconds = s_start[e_session] + offsets
    names = EVENT_NAMES[rng.choice(4, len(e_session), p=[0.65, 0.2, 0.1, 0.05])]
    values = np.where(names == "purchase", np.round(3_000 * rng.lognormal(0, 0.5, len(names))), 0.0)
    utc0 = np.datetime64(dt.datetime.combine(DAY, dt.time()), "us")
    return pa.table(
        {
            "user_id": _ids(("u", s_user[e_session], 7)),
            "event_ts": utc0 + (seconds * 1e6).astype(np.int64) * np.timedelta64(1, "us"),
            "event_name": names,
            "value": values,
            "properties": np.full(len(names), "{}", dtype=object),
        }
    )


def prepare(warehouse: DuckDBWarehouse, users: int, seed: int = 0) -> set[str]:
    """The day's events and the history before it; the planted users' ids."""
    rng = np.random.default_rng(seed)
    for ddl in ("raw_events_table", "user_daily_activity_table", "user_behaviour_features_table"):
        warehouse.ensure_table(ddl)
    world = SyntheticWorld(start=DAY, planted_users=max(3, int(users * PLANTED_SHARE)))
    planted = planted_events(world, DAY, np.datetime64(dt.datetime.combine(DAY, dt.time()), "us"))
    planted = pa.Table.from_pandas(
        planted[["user_id", "event_ts", "event_name", "value"]].assign(properties="{}"), preserve_index=False
    )
    events = pa.concat_tables([_day_events(users, rng), planted.cast(_day_events(1, rng).schema)])
    warehouse.replace_partition_with_rows("raw_events", DAY, events)
    for back in range(1, HISTORY_DAYS + 1):
        active = np.flatnonzero(rng.random(users) < 0.2)
        warehouse.replace_partition_with_rows(
            "user_daily_activity",
            DAY - dt.timedelta(days=back),
            pa.table(
                {
                    "user_id": _ids(("u", active, 7)),
                    "events": 1 + rng.poisson(5.0, len(active)),
                    "purchases": rng.binomial(1, 0.1, len(active)),
                }
            ),
        )
    return {user for ids in planted_user_ids(world).values() for user in ids}


def run(work: Path, users: int, log) -> dict:
    warehouse = DuckDBWarehouse(path=str(work / f"anomaly-{users}" / "warehouse.duckdb"))
    Path(warehouse.path).unlink(missing_ok=True)
    log(f"anomaly: making a day of {users:,} users")
    started = time.perf_counter()
    planted = prepare(warehouse, users)
    prepare_seconds = time.perf_counter() - started
    settings = DetectorSettings(contamination=len(planted) / users)
    steps: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def timed(name, fn):
        # CPU seconds of this process (DuckDB's and joblib's threads included) beside the wall clock:
        # on a shared machine the wall clock also counts the other tenants' turns.
        started, cpu_started = time.perf_counter(), time.process_time()
        value = fn()
        steps[name] = time.perf_counter() - started
        cpu[name] = time.process_time() - cpu_started
        log(f"anomaly {users:,} users: {name} {steps[name]:.1f}s wall, {cpu[name]:.1f}s CPU")
        return value

    events = int(warehouse.query("event_counts", {"partition_date": DAY})["events"].sum())
    timed(
        "features_sql",
        lambda: warehouse.replace_partition(
            "user_behaviour_features", DAY, "user_behaviour_features", FEATURE_PARAMS
        ),
    )
    features = timed(
        "read_features",
        lambda: warehouse.query(
            "user_behaviour_features_of_day", {"partition_date": DAY, "client_id": "default"}
        ),
    )
    result = timed("score", lambda: score_client_day(features, settings, DAY))
    warehouse.ensure_table("user_anomaly_scores_table")
    timed(
        "write_scores",
        lambda: warehouse.replace_partition_with_rows("user_anomaly_scores", DAY, result.scores),
    )
    timed(
        "exclusion_audience",
        lambda: warehouse.replace_partition("anomaly_exclusion_audience", DAY, "anomaly_exclusion_audience"),
    )
    flagged = result.scores[result.scores["flagged"]]
    return {
        "users": int(len(features)),
        "events": events,
        "planted": len(planted),
        "precision_at_planted_share": float(flagged["user_id"].isin(planted).mean()),
        "prepare_seconds": prepare_seconds,
        "steps": steps,
        "cpu_steps": cpu,
        "total_seconds": sum(steps.values()),
        "total_cpu_seconds": sum(cpu.values()),
    }
