"""Event files are read as the event schema, cut to the partition's local day."""

import datetime as dt

import pandas as pd
import pytest

from karte_assets.event_sources import EventSourceError, day_events
from karte_assets.synthetic import SyntheticWorld

WORLD = SyntheticWorld(start=dt.date(2026, 6, 1))
DAY = dt.date(2026, 6, 10)


def read(source: str, timezone: str = "Asia/Tokyo") -> pd.DataFrame:
    with day_events(source, DAY, timezone, WORLD) as rows:
        return rows.read_all().to_pandas()


def test_csv_with_naive_utc_timestamps_is_cut_at_local_midnight_and_keeps_extra_columns(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            # 2026-06-09 15:00 UTC is midnight in Tokyo: the first row is the day before.
            "event_ts": [
                "2026-06-09 14:59:59",
                "2026-06-09 15:00:00",
                "2026-06-10 14:59:59",
                "2026-06-10 15:00:00",
            ],
            "event_name": ["view", "purchase", "cart", "view"],
            "value": [None, 1200.0, None, None],
            "campaign": ["a", "b", "c", "d"],
        }
    ).to_csv(path, index=False)
    events = read(str(path))
    assert list(events.columns) == ["user_id", "event_ts", "event_name", "value", "properties"]
    assert events["user_id"].tolist() == ["2", "3"]
    assert events["value"].tolist() == [1200.0, 0.0]
    assert events["properties"].tolist() == ['{"campaign":"b"}', '{"campaign":"c"}']
    assert read(str(path), timezone="UTC")["user_id"].tolist() == ["3", "4"]


def test_parquet_glob_with_offset_timestamps_and_no_value_column(tmp_path):
    for part in ("a", "b"):
        pd.DataFrame(
            {
                "user_id": [f"{part}1"],
                "event_ts": pd.to_datetime(["2026-06-10T08:00:00+09:00"]),
                "event_name": ["click"],
            }
        ).to_parquet(tmp_path / f"events-{part}.parquet")
    events = read(str(tmp_path / "events-*.parquet"))
    assert sorted(events["user_id"]) == ["a1", "b1"]
    assert events["event_ts"].iloc[0] == pd.Timestamp("2026-06-09 23:00:00")
    assert (events["value"] == 0).all() and events["properties"].isna().all()


def test_a_file_without_a_required_column_is_refused_by_name(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame({"user": ["u"], "event_ts": ["2026-06-10 01:00:00"], "event_name": ["view"]}).to_csv(
        path, index=False
    )
    with pytest.raises(EventSourceError, match=r"lacks the columns \['user_id'\]"):
        read(str(path))


@pytest.mark.parametrize("source", ["/nonexistent/events-*.parquet", "events.json"])
def test_a_source_matching_no_file_or_of_unknown_format_is_refused(source, tmp_path):
    if source.endswith(".json"):
        (tmp_path / source).write_text("{}")
        source = str(tmp_path / source)
    with pytest.raises(EventSourceError, match="event source"):
        read(source)


def test_synthetic_events_are_normalised_like_files():
    events = read("synthetic")
    assert len(events) > 0
    assert set(events["event_name"]) <= {"view", "click", "cart", "purchase"}
    assert events["properties"].str.contains('"session_id"').all()
