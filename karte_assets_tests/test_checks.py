"""Asset checks pass on good data, fail on data made to fail them, and block what follows."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from karte_assets.assets.checks import (
    FEATURES_VALID,
    MODEL_AUC,
    RAW_EVENTS_VALID,
    RAW_EVENTS_VOLUME,
    SCORES_DRIFT,
    SCORES_VALID,
    DayChecks,
    population_stability_index,
)
from karte_assets.assets.events import _check_days
from karte_assets.partitions import day_window
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with

NAMES = ["view", "click", "cart", "purchase"]
DAY = FIRST_DAY + dt.timedelta(days=10)


def events(n: int, day: dt.date = DAY, **overrides) -> pd.DataFrame:
    start = day_window(day, "Asia/Tokyo")[0].replace(tzinfo=None)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "event_ts": [start + dt.timedelta(minutes=i) for i in range(n)],
            "event_name": "view",
            "value": 0.0,
            "properties": None,
        }
    )
    return frame.assign(**overrides)


def judge(warehouse, day=DAY) -> dict[str, tuple[bool, str]]:
    checks = DayChecks()
    _check_days(warehouse, [day], {"Asia/Tokyo": ["default"]}, NAMES, checks)
    return {
        result.check_name: (result.passed, result.metadata["newest_day"].value) for result in checks.results()
    }


def test_raw_events_checks_pass_on_clean_data_and_name_each_kind_of_bad_row(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.ensure_table("raw_events_table")
    warehouse.replace_partition_with_rows("raw_events", DAY, events(5))
    assert judge(warehouse)[RAW_EVENTS_VALID][0]

    bad = pd.concat(
        [
            events(5),
            events(1, user_id=None),
            events(2, event_name="teleport"),
            events(1, event_ts=pd.Timestamp("2026-01-01")),
            events(1, value=-1.0),
            events(2, properties='{"event_id":"e1"}'),  # two rows of one event id
            events(1),  # identical rows without an id: other events (orders), not duplicates
            events(1),
        ]
    )
    warehouse.replace_partition_with_rows("raw_events", DAY, bad)
    passed, detail = judge(warehouse)[RAW_EVENTS_VALID]
    assert not passed
    assert (
        detail == "null_user_ids: 1, unknown_event_names: 2, outside_day: 1, invalid_values: 1, duplicates: 1"
    )


def test_the_volume_check_warns_on_a_day_far_below_the_trailing_median(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.ensure_table("raw_events_table")
    for back in range(1, 11):
        day = DAY - dt.timedelta(days=back)
        warehouse.replace_partition_with_rows("raw_events", day, events(100 + back, day))
    warehouse.replace_partition_with_rows("raw_events", DAY, events(104))
    assert judge(warehouse)[RAW_EVENTS_VOLUME][0]
    warehouse.replace_partition_with_rows("raw_events", DAY, events(30))
    passed, detail = judge(warehouse)[RAW_EVENTS_VOLUME]
    assert not passed and "0.28x the median of the 10 days before" in detail


class SourceLeakingNullUsers(DuckDBWarehouse):
    """The real warehouse, with a source that slips a row without user id past the reject rules."""

    def replace_partitions_with_rows(self, table, days, rows, clients=("default",)):
        counts = super().replace_partitions_with_rows(table, days, rows, clients)
        if table == "raw_events":
            with self.connect() as connection:
                for day in days:
                    connection.execute(
                        "INSERT INTO raw_events VALUES ($day, 'default', NULL, $ts, 'view', 0, NULL)",
                        {"day": day, "ts": day_window(day, "Asia/Tokyo")[0].replace(tzinfo=None)},
                    )
        return counts


def test_a_failed_blocking_check_stops_the_bad_day_from_flowing_on(tmp_path):
    graph = LocalGraph(tmp_path / "karte")
    graph.resources["warehouse"] = graph.warehouse = SourceLeakingNullUsers(path=graph.warehouse.path)
    result = graph.materialize(FIRST_DAY, raise_on_error=False)
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}[RAW_EVENTS_VALID]
    assert not evaluation.passed
    assert "null_user_ids: 1" in evaluation.metadata["failed_days"].value
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert materialized == {"raw_events"}
    assert not graph.warehouse.partition_exists("user_daily_activity", FIRST_DAY)


def test_on_a_clean_run_every_check_passes(graph):
    last = FIRST_DAY + dt.timedelta(days=2)
    result = graph.materialize(FIRST_DAY, last)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        RAW_EVENTS_VALID: True,
        RAW_EVENTS_VOLUME: True,
        FEATURES_VALID: True,
        MODEL_AUC: True,
        SCORES_VALID: True,
        SCORES_DRIFT: True,
    }
    # A range keeps each day's score bins for the next day's drift check: the same PSI as a run of
    # the last day alone, which reads the day before from the warehouse.
    alone = graph.materialize(last, selection=["loyalty_scores"])
    drift = [
        {e.check_name: e for e in run.get_asset_check_evaluations()}[SCORES_DRIFT]
        .metadata["newest_day"]
        .value
        for run in (result, alone)
    ]
    assert drift[0] == drift[1] and "PSI" in drift[0]


def test_the_feature_check_counts_values_out_of_range(tmp_path):
    graph = LocalGraph(tmp_path / "karte")
    graph.materialize(FIRST_DAY)
    features = graph.table("user_features", FIRST_DAY).drop(columns=["partition_date"])
    assert (
        graph.warehouse.query(
            "user_features_quality", {"first_date": FIRST_DAY, "last_date": FIRST_DAY}
        ).iloc[0]["out_of_range"]
        == 0
    )
    broken = features.assign(tenure_days=features["tenure_days"] - 5, active_days_7d=9)
    graph.warehouse.replace_partition_with_rows("user_features", FIRST_DAY, broken)
    quality = graph.warehouse.query(
        "user_features_quality", {"first_date": FIRST_DAY, "last_date": FIRST_DAY}
    ).iloc[0]
    assert quality["out_of_range"] == len(features)


def test_a_model_failing_its_check_is_kept_but_never_scores_the_previous_good_one_does(graph):
    day, next_day = FIRST_DAY + dt.timedelta(days=14), FIRST_DAY + dt.timedelta(days=15)
    assert graph.materialize(FIRST_DAY, day).success
    accepted = graph.table("loyalty_model", day).iloc[0]
    assert accepted["status"] == "trained"
    served = graph.resources["model_store"].snapshots().latest("default")[0]
    assert (served.partition_date, served.model_version) == (day, accepted["model_version"])

    # Trained on demand: the retrain cadence would keep the day-old model.
    strict = config_with(loyalty_model={"min_validation_auc": 0.999, "retrain_now": True})
    result = graph.materialize(next_day, run_config=strict, raise_on_error=False)
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}[MODEL_AUC]
    assert (
        not evaluation.passed and "below min_validation_auc 0.999" in evaluation.metadata["failed_days"].value
    )
    rejected = graph.table("loyalty_model", next_day).iloc[0]
    assert rejected["status"] == "rejected" and rejected["model_version"] != accepted["model_version"]
    assert rejected["note"].startswith("validation AUC")
    scores = graph.table("loyalty_scores", next_day)
    assert set(scores["model_version"]) == {accepted["model_version"]}
    # The lookup service keeps serving the accepted day: the rejected model's day is never published.
    assert graph.resources["model_store"].snapshots().latest("default")[0] == served
    assert {d.date() for d in scores["model_date"]} == {day}

    # The day after, no model is due (the cadence) and the accepted model scores it: that day is served.
    after = next_day + dt.timedelta(days=1)
    assert graph.materialize(after).success
    assert graph.table("loyalty_model", after).iloc[0]["status"] == "not_due"
    newest = graph.resources["model_store"].snapshots().latest("default")[0]
    assert (newest.partition_date, newest.model_version) == (after, accepted["model_version"])


def test_population_stability_index_is_zero_for_the_same_shape_and_large_for_a_shift():
    base = np.array([10, 20, 40, 20, 10])
    assert population_stability_index(base, base * 3) == pytest.approx(0)
    assert population_stability_index(base, base[::-1] + np.array([0, 0, 0, 30, 60])) > 0.2


def test_failed_days_is_a_markdown_table_whose_cells_keep_a_pipe_in_a_detail():
    checks = DayChecks()
    checks.record(RAW_EVENTS_VALID, DAY, False, "file a|b.csv: 2 rows\nrejected")
    checks.record(RAW_EVENTS_VALID, DAY + dt.timedelta(days=1), True, "fine")
    (result,) = checks.results()
    lines = result.metadata["failed_days"].value.splitlines()
    assert lines == ["| day | why |", "|---|---|", f"| {DAY} | file a\\|b.csv: 2 rows rejected |"]
