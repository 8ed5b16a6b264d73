"""A day with too many bad rows fails with the reasons, keeps its previous events and the rejects."""

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
