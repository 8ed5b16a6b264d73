"""Benchmark events: days of the synthetic shop written once as Parquet, outside every timed section.

A day of N events comes from ``chunks`` independent synthetic worlds (seeds ``seed + c``), each
generated alone and written as its own file, so that generation never holds more than one chunk
(about 2M events, 0.6 GB of pandas) in memory. Users of chunk ``c`` get the id prefix ``c<c>-``,
so chunks never share users. The worlds start a year before the first benchmark day, so the shop
is in its steady state: returning users, a stable population, and roughly the same volume every
day (weekends and paydays still lift it).

Files: ``<directory>/<day>/part-<c>.parquet`` with the synthetic columns (user_id, event_ts,
event_name, value, session_id, item_id); the file source keeps the last two as properties.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from karte_assets.synthetic import SyntheticWorld, generate_day

TIMEZONE = "Asia/Tokyo"
# The first benchmark day (a Wednesday; day 90 is a Monday, and neither is a payday).
FIRST_DAY = dt.date(2026, 6, 3)
WORLD_START = FIRST_DAY - dt.timedelta(days=367)
CHUNK_EVENTS = 2_000_000
SEED = 1000
# Events per day per unit of new_users_per_day once the world is in its steady state, for the
# first estimate; each set then calibrates on a small world of its own.
_PROBE_USERS_PER_DAY = 1_000.0


@dataclass(frozen=True)
class EventSet:
    """Days of benchmark events on disk; ``events``/``users`` per day as generated."""

    directory: str
    days: list[str]
    target_events_per_day: int
    chunks: int
    new_users_per_day_per_chunk: float
    events: dict[str, int]
    users: dict[str, int]
    generate_seconds: float

    def day_glob(self, day: dt.date) -> str:
        return str(Path(self.directory) / day.isoformat() / "*.parquet")

    def all_glob(self) -> str:
        return str(Path(self.directory) / "*" / "*.parquet")

    def dates(self) -> list[dt.date]:
        return [dt.date.fromisoformat(day) for day in self.days]


def _world(chunk: int, new_users_per_day: float) -> SyntheticWorld:
    return SyntheticWorld(start=WORLD_START, new_users_per_day=new_users_per_day, seed=SEED + chunk)


def _events_per_user_rate(day: dt.date) -> float:
    """Events on ``day`` per unit of new_users_per_day, from a small world."""
    probe = generate_day(_world(0, _PROBE_USERS_PER_DAY), day, TIMEZONE)
    return len(probe) / _PROBE_USERS_PER_DAY


def _write_chunk(frame, path: Path, prefix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with duckdb.connect() as connection:
        connection.register("frame", frame)
        connection.execute(
            f"COPY (SELECT $prefix || user_id AS user_id, event_ts, event_name, value, session_id, item_id "
            f"FROM frame) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)",
            {"prefix": prefix},
        )
    tmp.rename(path)


def event_set(
    directory: Path, days: list[dt.date], events_per_day: int, log=print, chunk_events: int = CHUNK_EVENTS
) -> EventSet:
    """The event set of ``days`` at about ``events_per_day``; generated unless already on disk."""
    manifest = directory / "manifest.json"
    if manifest.exists():
        existing = EventSet(**json.loads(manifest.read_text()))
        if (
            existing.days == [d.isoformat() for d in days]
            and existing.target_events_per_day == events_per_day
        ):
            return existing
    started = time.perf_counter()
    chunks = max(1, math.ceil(events_per_day / chunk_events))
    rate = _events_per_user_rate(days[0])
    users_per_chunk = events_per_day / rate / chunks
    log(
        f"generating {len(days)} day(s) of ~{events_per_day:,} events in {chunks} chunk(s) "
        f"under {directory} ..."
    )
    events: dict[str, int] = {}
    users: dict[str, int] = {}
    for number, day in enumerate(days, start=1):
        events[day.isoformat()], users[day.isoformat()] = 0, 0
        for chunk in range(chunks):
            frame = generate_day(_world(chunk, users_per_chunk), day, TIMEZONE)
            prefix = f"c{chunk}-" if chunks > 1 else ""
            _write_chunk(frame, directory / day.isoformat() / f"part-{chunk:03d}.parquet", prefix)
            events[day.isoformat()] += len(frame)
            users[day.isoformat()] += frame["user_id"].nunique()
            del frame
        if number % 10 == 0 or number == len(days):
            log(f"  {number}/{len(days)} days, {time.perf_counter() - started:.0f}s")
    result = EventSet(
        directory=str(directory),
        days=[d.isoformat() for d in days],
        target_events_per_day=events_per_day,
        chunks=chunks,
        new_users_per_day_per_chunk=users_per_chunk,
        events=events,
        users=users,
        generate_seconds=round(time.perf_counter() - started, 1),
    )
    manifest.write_text(json.dumps(asdict(result), indent=1))
    return result


def single_day(work: Path, events_per_day: int, log=print) -> EventSet:
    """One steady-state day (FIRST_DAY) of about ``events_per_day`` events."""
    return event_set(work / "events" / f"day-{_label(events_per_day)}", [FIRST_DAY], events_per_day, log)


def history(work: Path, days: int, events_per_day: int, log=print) -> EventSet:
    """``days`` consecutive days from FIRST_DAY at about ``events_per_day`` events each."""
    dates = [FIRST_DAY + dt.timedelta(days=i) for i in range(days)]
    return event_set(
        work / "events" / f"history-{days}d-{_label(events_per_day)}", dates, events_per_day, log
    )


def _label(events: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if events >= size and events % (size // 10) == 0:
            return f"{events / size:g}{unit}"
    return str(events)
