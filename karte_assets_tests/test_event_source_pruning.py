"""A timestamp-typed event_ts is filtered on the column itself (so Parquet skips other days' row
groups): the day's accepted and rejected rows are exactly those of the same events as text."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from karte_assets.event_sources import FileSource, _day_prefilter, day_events

DAY = dt.date(2026, 6, 10)
NAMES = ["view", "click", "cart", "purchase"]


def day_rows(source: str, tmp_path) -> tuple[list, list]:
    with day_events(FileSource(source), DAY, "Asia/Tokyo", NAMES, tmp_path / "spill") as events:
        accepted = events.accepted().read_all().to_pandas()
        rejected = (
            events.rejected()
            .read_all()
            .to_pandas()
            .drop(columns=["source", "event_ts", "source_file", "source_line"])
        )
    return (
        sorted(map(tuple, accepted.astype(str).to_numpy())),
        sorted(map(tuple, rejected.astype(str).to_numpy())),
    )


def events_around_the_day() -> pd.DataFrame:
    """Events every 20 minutes from two days before to two days after, some copied, one without a time."""
    times = pd.date_range("2026-06-08 00:00", "2026-06-12 00:00", freq="20min")
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i % 7}" for i in range(len(times))],
            "event_ts": times,
            "event_name": [NAMES[i % 4] for i in range(len(times))],
            "value": [float(i % 5) for i in range(len(times))],
        }
    )
    no_time = frame.iloc[[0]].assign(event_ts=pd.NaT, user_id="no-time")
    return pd.concat([frame, frame.iloc[120:123], no_time], ignore_index=True)


@pytest.mark.parametrize(
    ("unit", "zone"), [("ns", None), ("us", None), ("ms", None), ("ns", "UTC"), ("us", "Asia/Tokyo")]
)
def test_a_glob_of_daily_files_gives_the_rows_of_the_events_read_as_text(unit, zone, tmp_path):
    frame = events_around_the_day()
    frame["event_ts"] = frame["event_ts"].astype(f"datetime64[{unit}]")
    if zone:  # timestamptz columns: the same instants, written with an offset
        frame["event_ts"] = frame["event_ts"].dt.tz_localize("UTC").dt.tz_convert(zone)
    typed, text = tmp_path / "typed", tmp_path / "text"
    typed.mkdir(), text.mkdir()
    # One file per UTC day (as an export would write them), each several row groups; the event
    # without a time in a file of its own.
    for number, (_, part) in enumerate(frame.groupby(frame["event_ts"].dt.date, dropna=False)):
        part.to_parquet(typed / f"events-{number}.parquet", index=False, row_group_size=16)
    frame.astype({"event_ts": "string"}).to_parquet(text / "events.parquet", index=False)

    accepted, rejected = day_rows(str(typed / "*.parquet"), tmp_path)
    assert (accepted, rejected) == day_rows(str(text / "*.parquet"), tmp_path)
    assert len(accepted) == 72 + 3  # 24 hours of events every 20 minutes, and the copies (no event id)
    assert [reason for reason, *_ in rejected] == ["missing event_ts"]


def test_each_timestamp_type_of_a_parquet_event_ts_is_filtered_on_the_column(tmp_path):
    start, end = (dt.datetime(2026, 6, d, 15, tzinfo=dt.UTC) for d in (9, 10))
    for unit in ("ns", "us", "ms", "s"):
        for zone in (None, "UTC"):
            path = tmp_path / f"{unit}-{zone}.parquet"
            times = pd.Series(pd.to_datetime(["2026-06-10 00:00:00"])).astype(f"datetime64[{unit}]")
            pd.DataFrame({"event_ts": times.dt.tz_localize(zone) if zone else times}).to_parquet(path)
            column_type = duckdb.execute(f"DESCRIBE SELECT event_ts FROM '{path}'").fetchall()[0][1]
            assert _day_prefilter(column_type, start, end) is not None, column_type
    assert _day_prefilter("VARCHAR", start, end) is None
