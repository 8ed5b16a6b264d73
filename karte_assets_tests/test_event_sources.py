"""Event files are read as the event schema, cut to the partition's local day, bad rows sorted out."""

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karte_assets.event_sources import EventSourceError, day_events
from karte_assets.synthetic import SyntheticWorld

WORLD = SyntheticWorld(start=dt.date(2026, 6, 1))
DAY = dt.date(2026, 6, 10)
NAMES = ["view", "click", "cart", "purchase"]


def open_day(source: str, tmp_path, timezone: str = "Asia/Tokyo"):
    return day_events(source, DAY, timezone, WORLD, NAMES, tmp_path / "spill")


def read(source: str, tmp_path, timezone: str = "Asia/Tokyo") -> tuple[pd.DataFrame, dict[str, int]]:
    with open_day(source, tmp_path, timezone) as events:
        accepted = (
            events.accepted().read_all().to_pandas().sort_values(["event_ts", "user_id"], ignore_index=True)
        )
        return accepted, events.reject_counts()


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
    events, rejects = read(str(path), tmp_path)
    assert list(events.columns) == ["user_id", "event_ts", "event_name", "value", "properties"]
    assert events["user_id"].tolist() == ["2", "3"]
    assert events["value"].tolist() == [1200.0, 0.0]
    assert events["properties"].tolist() == ['{"campaign":"b"}', '{"campaign":"c"}']
    assert rejects == {}
    assert read(str(path), tmp_path, timezone="UTC")[0]["user_id"].tolist() == ["3", "4"]


def test_parquet_glob_with_offset_timestamps_and_no_value_column(tmp_path):
    for part in ("a", "b"):
        pd.DataFrame(
            {
                "user_id": [f"{part}1"],
                "event_ts": pd.to_datetime(["2026-06-10T08:00:00+09:00"]),
                "event_name": ["click"],
            }
        ).to_parquet(tmp_path / f"events-{part}.parquet")
    events, _ = read(str(tmp_path / "events-*.parquet"), tmp_path)
    assert sorted(events["user_id"]) == ["a1", "b1"]
    assert events["event_ts"].iloc[0] == pd.Timestamp("2026-06-09 23:00:00")
    assert (events["value"] == 0).all() and events["properties"].isna().all()


GOOD = {"user_id": "u1", "event_ts": "2026-06-10 03:00:00", "event_name": "view", "value": "0"}
# A corpus of bad rows: each file holds good rows plus rows broken in one way.
CORPUS = {
    "missing user_id": [{**GOOD, "user_id": ""}, {**GOOD, "user_id": None}],
    "missing event_ts": [{**GOOD, "event_ts": None}],
    "unparseable event_ts": [{**GOOD, "event_ts": "yesterday"}, {**GOOD, "event_ts": "2026-02-30 01:00"}],
    "unknown event_name": [{**GOOD, "event_name": "teleport"}, {**GOOD, "event_name": None}],
    "non-numeric value": [{**GOOD, "event_name": "purchase", "value": "12,5 yen"}],
    "negative or NaN value": [{**GOOD, "event_name": "purchase", "value": "-3"}, {**GOOD, "value": "NaN"}],
    "duplicate": [{**GOOD, "user_id": "u9"}, {**GOOD, "user_id": "u9"}, {**GOOD, "user_id": "u9"}],
}


@pytest.mark.parametrize("reason", sorted(CORPUS))
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_each_kind_of_bad_row_is_counted_and_kept_with_its_reason(reason, suffix, tmp_path):
    good = [{**GOOD, "user_id": f"g{i}", "event_ts": f"2026-06-10 0{i}:00:00"} for i in range(5)]
    frame = pd.DataFrame(good + CORPUS[reason])
    path = tmp_path / f"events.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.astype("string").to_parquet(path)
    expected = len(CORPUS[reason]) - (1 if reason == "duplicate" else 0)  # one copy of a duplicate stays
    with open_day(str(path), tmp_path) as events:
        assert events.reject_counts() == {reason: expected}
        accepted = events.accepted().read_all().to_pandas()
        rejected = events.rejected().read_all().to_pandas()
    assert len(accepted) + len(rejected) == len(frame)
    assert set(rejected["reject_reason"]) == {reason}
    assert (rejected["source"] == str(path)).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "user_id": st.one_of(st.none(), st.text(max_size=4)),
                "event_ts": st.one_of(
                    st.none(),
                    st.text(max_size=12),
                    st.datetimes(min_value=dt.datetime(2026, 6, 9), max_value=dt.datetime(2026, 6, 11)).map(
                        str
                    ),
                ),
                "event_name": st.one_of(st.none(), st.sampled_from(NAMES + ["teleport", ""])),
                "value": st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=5)).map(
                    lambda v: None if v is None else str(v)
                ),
            }
        ),
        max_size=30,
    )
)
def test_any_file_splits_into_accepted_and_rejected_rows_and_accepted_rows_are_valid(rows, tmp_path):
    path = tmp_path / "fuzz.parquet"
    pd.DataFrame(rows, columns=["user_id", "event_ts", "event_name", "value"]).astype("string").to_parquet(
        path
    )
    with open_day(str(path), tmp_path) as events:
        total = events.row_count()
        accepted = events.accepted().read_all().to_pandas()
        rejected = events.rejected().read_all().to_pandas()
    assert len(accepted) + len(rejected) == total <= len(rows)
    assert accepted["user_id"].str.strip().str.len().gt(0).all()
    assert accepted["event_name"].isin(NAMES).all()
    assert (accepted["value"] >= 0).all()
    start, end = pd.Timestamp("2026-06-09 15:00"), pd.Timestamp("2026-06-10 15:00")
    assert accepted["event_ts"].between(start, end, inclusive="left").all()
    assert not accepted.duplicated().any()


def test_a_file_without_a_required_column_is_refused_by_name(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame({"user": ["u"], "event_ts": ["2026-06-10 01:00:00"], "event_name": ["view"]}).to_csv(
        path, index=False
    )
    with pytest.raises(EventSourceError, match=r"lacks the columns \['user_id'\]"):
        read(str(path), tmp_path)


@pytest.mark.parametrize("source", ["/nonexistent/events-*.parquet", "events.json"])
def test_a_source_matching_no_file_or_of_unknown_format_is_refused(source, tmp_path):
    if source.endswith(".json"):
        (tmp_path / source).write_text("{}")
        source = str(tmp_path / source)
    with pytest.raises(EventSourceError, match="event source"):
        read(source, tmp_path)


def test_synthetic_events_are_clean_and_normalised_like_files(tmp_path):
    events, rejects = read("synthetic", tmp_path)
    assert len(events) > 0 and rejects == {}
    assert set(events["event_name"]) <= set(NAMES)
    assert events["properties"].str.contains('"session_id"').all()
