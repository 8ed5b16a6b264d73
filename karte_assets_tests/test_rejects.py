"""A day with too many bad rows fails with the reasons, keeps its previous events and the rejects."""

import datetime as dt

import pandas as pd

from karte_assets_tests.graph import FIRST_DAY, config_with, failure_message


def write_day(path, bad_rows: int) -> str:
    good = [
        {"user_id": f"u{i}", "event_ts": f"2026-06-01 0{i % 9}:00:00", "event_name": "view"}
        for i in range(20)
    ]
    bad = [{"user_id": f"b{i}", "event_ts": "not a time", "event_name": "view"} for i in range(bad_rows)]
    bad += [{"user_id": None, "event_ts": "2026-06-01 01:00:00", "event_name": "view"}] * (bad_rows // 2)
    pd.DataFrame(good + bad).to_csv(path, index=False)
    return str(path)


def test_over_the_reject_share_the_day_fails_naming_file_day_and_reasons_and_keeps_its_events(
    graph, tmp_path
):
    clean = write_day(tmp_path / "clean.csv", bad_rows=0)
    assert graph.materialize(FIRST_DAY, run_config=config_with(raw_events={"source": clean})).success
    before = graph.table("raw_events", FIRST_DAY)

    dirty = write_day(tmp_path / "dirty.csv", bad_rows=10)
    result = graph.materialize(
        FIRST_DAY, run_config=config_with(raw_events={"source": dirty}), raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert (
        f"raw_events 2026-06-01: 15 of 35 rows from '{dirty}' rejected (42.9%, over max_reject_share 1.0%)"
        in message
    )
    assert "missing user_id: 5, unparseable event_ts: 10" in message
    pd.testing.assert_frame_equal(graph.table("raw_events", FIRST_DAY), before)
    rejects = graph.table("raw_event_rejects", FIRST_DAY)
    assert rejects["reject_reason"].value_counts().to_dict() == {
        "unparseable event_ts": 10,
        "missing user_id": 5,
    }
    assert set(rejects["source"]) == {dirty}


def test_under_the_reject_share_the_day_loads_and_reports_its_rejects(graph, tmp_path):
    dirty = write_day(tmp_path / "dirty.csv", bad_rows=10)
    config = config_with(raw_events={"source": dirty, "max_reject_share": 0.5})
    result = graph.materialize(FIRST_DAY, run_config=config)
    assert len(graph.table("raw_events", FIRST_DAY)) == 20
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert metadata["rejected_rows"].value == 15


def test_a_purchase_log_without_ids_keeps_identical_same_day_orders_and_the_day_loads(graph, tmp_path):
    # One row per order, day precision, no event id: five customers buy twice for the same amount.
    orders = [
        {"user_id": f"c{i}", "event_ts": "2026-06-01", "event_name": "purchase", "value": 1000 + i}
        for i in range(397)
    ]
    path = tmp_path / "orders.csv"
    pd.DataFrame(orders + orders[:5]).to_csv(path, index=False)
    result = graph.materialize(
        FIRST_DAY, run_config=config_with(raw_events={"source": str(path)}), selection=["raw_events"]
    )
    assert len(graph.table("raw_events", FIRST_DAY)) == 402
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    assert metadata["rejected_rows"].value == 0
    assert metadata["identical_rows_kept"].value == 5
    assert metadata["duplicates_dropped"].value == 0
    logs = graph.instance.all_logs(result.run_id)
    assert any("5 rows are exact copies" in record.user_message for record in logs)


def test_a_ragged_line_and_a_control_character_are_rejected_alone_with_file_line_and_reason(graph, tmp_path):
    lines = ["user_id,event_ts,event_name,value"]
    lines += [f"u{i},2026-06-01 0{i % 9}:00:00,view," for i in range(200)]
    lines[50] = "u49,2026-06-01 03:00:00,purchase,1200,extra"  # line 51: one field too many
    lines[120] = "u1\x0219,2026-06-01 04:00:00,view,"  # line 121: a control character in the id
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    result = graph.materialize(
        FIRST_DAY, run_config=config_with(raw_events={"source": str(path)}), selection=["raw_events"]
    )
    assert len(graph.table("raw_events", FIRST_DAY)) == 198
    rejects = graph.table("raw_event_rejects", FIRST_DAY).sort_values("source_line")
    assert rejects[["reject_reason", "source_line"]].values.tolist() == [
        ["too many columns", 51],
        ["control character in user_id", 121],
    ]
    assert set(rejects["source_file"]) == {str(path)}
    assert rejects["raw_line"].iloc[0] == "u49,2026-06-01 03:00:00,purchase,1200,extra"
    assert result.asset_materializations_for_node("raw_events")[0].metadata["rejected_rows"].value == 2


def test_a_backfill_that_fails_on_one_day_names_it_and_the_knob_and_a_rerun_of_the_range_is_safe(
    graph, tmp_path
):
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(3)]
    good = [
        {"user_id": f"u{i}", "event_ts": f"{day} 0{i}:00:00", "event_name": "view"}
        for day in days
        for i in range(5)
    ]
    path = tmp_path / "events.csv"
    bad = [{"user_id": "x", "event_ts": f"{days[1]} 01:00:00", "event_name": "teleport"}]
    pd.DataFrame(good + bad).to_csv(path, index=False)
    config = config_with(raw_events={"source": str(path)})
    result = graph.materialize(
        days[0], days[2], run_config=config, selection=["raw_events"], raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert "raw_events 2026-06-02: 1 of 6 rows" in message and "unknown event_name: 1" in message
    assert "raise max_reject_share in the raw_events config, and run the range again" in message
    assert len(graph.table("raw_events", days[0])) == 5  # the day before the failure is stored
    assert graph.table("raw_events", days[2]).empty

    config = config_with(raw_events={"source": str(path), "max_reject_share": 0.2})
    for _ in range(2):  # the range run again, twice: each day replaced, never appended
        assert graph.materialize(days[0], days[2], run_config=config, selection=["raw_events"]).success
        assert [len(graph.table("raw_events", day)) for day in days] == [5, 5, 5]
        assert len(graph.table("raw_event_rejects", days[1])) == 1
