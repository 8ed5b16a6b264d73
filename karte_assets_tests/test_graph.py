"""The whole graph on small synthetic data: backfills, re-runs and the coupon audience."""

import datetime as dt

import pandas as pd
import pytest

from karte_assets.assets.common import GROUP
from karte_assets.definitions import ASSETS
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with, days

TABLES = [asset.key.path[-1] for asset in ASSETS]
# Written at a wall-clock time, or a path under the $KARTE_HOME: never equal between two homes.
VOLATILE = {"loyalty_model": ("trained_at", "model_uri")}
LAST_DAY = FIRST_DAY + dt.timedelta(days=15)


def snapshot(graph: LocalGraph) -> dict[str, pd.DataFrame]:
    return {name: graph.table(name, drop=VOLATILE.get(name, ())) for name in TABLES}


def assert_same_tables(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)


def test_every_asset_is_a_daily_partition_with_single_run_backfills():
    for asset in ASSETS:
        assert asset.partitions_def is not None
        assert asset.backfill_policy.max_partitions_per_run is None, asset.key
        assert asset.group_names_by_key[asset.key] == GROUP


@pytest.mark.slow
def test_range_backfill_from_the_first_day_equals_day_by_day_runs_and_reruns_change_nothing(tmp_path):
    # A model every day, so that each later model is judged against the one before.
    daily_models = config_with(loyalty_model={"retrain_every_days": 1})
    backfilled = LocalGraph(tmp_path / "backfill")
    assert backfilled.materialize(FIRST_DAY, LAST_DAY, run_config=daily_models).success
    first = snapshot(backfilled)
    assert first["loyalty_model"]["status"].eq("trained").sum() >= 2, "the test range must train models"

    assert backfilled.materialize(FIRST_DAY, LAST_DAY, run_config=daily_models).success
    assert_same_tables(first, snapshot(backfilled))

    day_by_day = LocalGraph(tmp_path / "daily")
    for day in days(FIRST_DAY, LAST_DAY):
        assert day_by_day.materialize(day, run_config=daily_models).success
    assert_same_tables(first, snapshot(day_by_day))


def test_scores_cover_every_user_seen_so_far_with_tiers_as_configured(graph):
    graph.materialize(
        FIRST_DAY,
        LAST_DAY,
        run_config=config_with(loyalty_scores={"tier_a_share": 0.1, "tier_b_share": 0.25}),
    )
    scores = graph.table("loyalty_scores", LAST_DAY)
    seen = graph.table("raw_events").query("partition_date <= @LAST_DAY")["user_id"].unique()
    assert sorted(scores["user_id"]) == sorted(seen)
    assert scores["loyal_score"].between(0, 1).all()
    assert scores["model_version"].nunique() == 1 and scores["model_version"].iloc[0].startswith("loyalty-")
    tiers = scores["coupon_tier"].value_counts()
    assert tiers["A"] == int(len(scores) * 0.1)
    assert tiers["B"] == int(len(scores) * 0.35) - tiers["A"]
    top = scores.sort_values("score_rank")
    assert top["loyal_score"].is_monotonic_decreasing
    assert (top["coupon_tier"].iloc[: tiers["A"]] == "A").all()


def test_days_before_the_first_model_are_scored_by_the_baseline_and_say_so(graph):
    graph.materialize(FIRST_DAY, FIRST_DAY + dt.timedelta(days=2))
    models = graph.table("loyalty_model")
    assert (models["status"] == "skipped").all()
    assert models["note"].str.contains("no labelled snapshot").all()
    scores = graph.table("loyalty_scores")
    assert (scores["model_version"] == "baseline:purchases_90d").all()


def test_a_day_whose_previous_lifetime_state_is_missing_fails_with_the_day_to_backfill(graph):
    result = graph.materialize(FIRST_DAY + dt.timedelta(days=5), raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "user_profile for 2026-06-05 is missing" in message
    assert "2026-06-01" in message


def test_the_model_beats_the_purchase_frequency_ranking_on_a_later_time_slice(graph):
    """Enough history for several training snapshots; the asset's own validation is the judge."""
    config = config_with(
        raw_events={"synthetic_new_users_per_day": 100.0},
        loyalty_training_set={"horizon_days": 14, "max_snapshots": 6},
        loyalty_model={"num_boost_round": 200},
    )
    last = FIRST_DAY + dt.timedelta(days=48)
    upstream = [name for name in TABLES if name not in ("loyalty_model", "loyalty_scores")]
    assert graph.materialize(FIRST_DAY, last, run_config=config, selection=upstream).success
    result = graph.materialize(last, run_config=config, selection=["loyalty_model"])
    model = graph.table("loyalty_model", last).iloc[0]
    assert model["status"] == "trained"
    assert model["validation_rows"] > 1000
    assert model["validation_auc"] > model["baseline_auc"] + 0.02, (
        model["validation_auc"],
        model["baseline_auc"],
    )
    metadata = result.asset_materializations_for_node("loyalty_model")[0].metadata
    assert metadata["validation_auc"].value == pytest.approx(model["validation_auc"])
    assert metadata["baseline_auc"].value == pytest.approx(model["baseline_auc"])
