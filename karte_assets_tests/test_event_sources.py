"""Event files are read as the event schema, cut to the partition's local day, bad rows sorted out."""

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karte_assets.event_sources import EventSourceError, FileSource, SyntheticSource, day_events
from karte_assets.synthetic import SyntheticWorld

WORLD = SyntheticWorld(start=dt.date(2026, 6, 1))
DAY = dt.date(2026, 6, 10)
NAMES = ["view", "click", "cart", "purchase"]


def open_day(source: str, tmp_path, timezone: str = "Asia/Tokyo"):
    reader = SyntheticSource(WORLD) if source == "synthetic" else FileSource(source)
    return day_events(reader, DAY, timezone, NAMES, tmp_path / "spill")


def read(source: str, tmp_path, timezone: str = "Asia/Tokyo") -> tuple[pd.DataFrame, dict[str, int]]:
    with open_day(source, tmp_path, timezone) as events:
        accepted = (
            events.accepted().read_all().to_pandas().sort_values(["event_ts", "user_id"], ignore_index=True)
        )
        # Every row read for one day is on that day.
        assert (accepted.pop("partition_date") == DAY).all()
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
    "control character in user_id": [{**GOOD, "user_id": "u\x01"}, {**GOOD, "user_id": "u\t9"}],
}


@pytest.mark.parametrize("reason", sorted(CORPUS))
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_each_kind_of_bad_row_is_counted_and_kept_with_its_reason(reason, suffix, tmp_path):
    good = [{**GOOD, "user_id": f"g{i}", "event_ts": f"2026-06-10 0{i}:00:00"} for i in range(5)]
    frame = pd.DataFrame(good + CORPUS[reason])
    path = tmp_path / f"events.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.astype("string").to_parquet(path)
    with open_day(str(path), tmp_path) as events:
        assert events.reject_counts() == {reason: len(CORPUS[reason])}
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


ORDER = {"user_id": "u1", "event_ts": "2026-06-10", "event_name": "purchase", "value": "3000"}


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_rows_sharing_an_event_id_are_one_event_dropped_and_counted_not_rejected(suffix, tmp_path):
    frame = pd.DataFrame(
        [
            {**ORDER, "event_id": "e1", "event_ts": "2026-06-10 02:00:00"},
            {**ORDER, "event_id": "e1", "event_ts": "2026-06-10 01:00:00"},  # the earlier copy stays
            {**ORDER, "event_id": "e1", "event_ts": "2026-06-10 03:00:00"},
            {**ORDER, "event_id": "e2"},
            {**ORDER, "event_id": "e3", "value": "-1"},  # invalid: a reject, and not a copy of anything
            {**ORDER, "event_id": "e3"},
        ]
    )
    path = tmp_path / f"events.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    with open_day(str(path), tmp_path) as events:
        accepted = events.accepted().read_all().to_pandas().sort_values("properties", ignore_index=True)
        assert events.duplicate_count() == 2
        assert events.reject_counts() == {"negative or NaN value": 1}
        assert events.identical_count() == 0
    assert accepted["properties"].tolist() == ['{"event_id":"e1"}', '{"event_id":"e2"}', '{"event_id":"e3"}']
    assert accepted["event_ts"].iloc[0] == pd.Timestamp("2026-06-10 01:00:00")


def test_an_event_id_column_of_another_name_is_named_in_config_and_kept_as_event_id(tmp_path):
    path = tmp_path / "orders.csv"
    pd.DataFrame(
        [{**ORDER, "order_id": "o1"}, {**ORDER, "order_id": "o1"}, {**ORDER, "order_id": "o2"}]
    ).to_csv(path, index=False)
    with day_events(
        FileSource(str(path)), DAY, "Asia/Tokyo", NAMES, tmp_path / "spill", event_id_column="order_id"
    ) as events:
        assert events.duplicate_count() == 1
        properties = sorted(events.accepted().read_all().to_pandas()["properties"])
    assert properties == ['{"event_id":"o1"}', '{"event_id":"o2"}']
    with pytest.raises(EventSourceError, match="has no event id column 'ordr_id'"):
        with day_events(
            FileSource(str(path)), DAY, "Asia/Tokyo", NAMES, tmp_path / "spill", event_id_column="ordr_id"
        ):
            pass


def test_without_an_event_id_identical_rows_are_two_orders_kept_and_counted(tmp_path):
    # A purchase log with day precision: the same customer buys twice on one day for the same amount.
    path = tmp_path / "orders.csv"
    pd.DataFrame([ORDER, ORDER, {**ORDER, "user_id": "u2"}]).to_csv(path, index=False)
    with open_day(str(path), tmp_path) as events:
        assert events.reject_counts() == {}
        assert events.duplicate_count() == 0
        assert events.identical_count() == 1
        accepted = events.accepted().read_all().to_pandas()
    assert accepted["user_id"].tolist().count("u1") == 2
    # A date alone is the start of that day in the configured time zone, so it lands on that day.
    assert (accepted["event_ts"] == pd.Timestamp("2026-06-09 15:00:00")).all()


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
