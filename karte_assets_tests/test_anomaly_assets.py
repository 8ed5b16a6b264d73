"""The anomaly assets on a small synthetic shop with planted bots and cheaters, and the loyalty
scores leaving the flagged users out."""

import datetime as dt

import pytest
from dagster import materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from karte_assets.assets.anomaly import ANOMALY_ASSETS, GROUP, anomaly_daily_job
from karte_assets.definitions import ASSETS, defs
from karte_assets.synthetic import SyntheticWorld, planted_user_ids
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with

LAST_DAY = FIRST_DAY + dt.timedelta(days=2)
PLANTED = 12


def run(graph: LocalGraph, selection: list[str] | None, raise_on_error: bool = True, **ops: dict):
    config = config_with(
        raw_events={"synthetic_planted_users": PLANTED, "synthetic_new_users_per_day": 400.0}, **ops
    )
    names = selection or [asset.key.path[-1] for asset in [*ASSETS, *ANOMALY_ASSETS]]
    return materialize(
        [*ASSETS, *ANOMALY_ASSETS],
        resources=graph.resources,
        run_config={"ops": {k: v for k, v in config["ops"].items() if k in names}},
        instance=graph.instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: FIRST_DAY.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: LAST_DAY.isoformat(),
        },
        selection=selection,
        raise_on_error=raise_on_error,
    )


def test_the_anomaly_job_is_its_own_group():
    job = defs.resolve_job_def(anomaly_daily_job.name)
    assert {key.path[-1] for key in job.asset_layer.selected_asset_keys} == {
        "user_behaviour_features",
        "user_anomaly_scores",
        "anomaly_exclusion_audience",
    }
    for asset in ANOMALY_ASSETS:
        assert asset.group_names_by_key[asset.key] == GROUP
        assert asset.partitions_def is not None


@pytest.mark.slow
def test_scores_flags_and_exclusion_audience_on_a_synthetic_shop_then_loyalty_leaves_them_out(tmp_path):
    graph = LocalGraph(tmp_path / "home")
    exports = tmp_path / "exports"
    planted = {
        u
        for users in planted_user_ids(SyntheticWorld(FIRST_DAY, planted_users=PLANTED)).values()
        for u in users
    }
    result = run(
        graph,
        None,
        user_anomaly_scores={"contamination": 0.02},
        anomaly_exclusion_audience={"directory": str(exports)},
    )
    assert result.success

    for day in (FIRST_DAY, LAST_DAY):
        scores = graph.table("user_anomaly_scores", day)
        active = graph.table("user_behaviour_features", day)
        assert sorted(scores["user_id"]) == sorted(active["user_id"])
        assert (scores["client_id"] == "default").all()
        flagged = scores[scores["flagged"]]
        assert len(flagged) == int(0.02 * len(scores))
        assert flagged["user_id"].isin(planted).mean() >= 0.9
        assert flagged["reasons"].str.len().gt(0).all()
        assert scores["model_version"].str.fullmatch(rf"isolation_forest:[0-9a-f]{{10}}:{day}").all()
        audience = graph.table("anomaly_exclusion_audience", day)
        assert sorted(audience["user_id"]) == sorted(flagged["user_id"])
        assert (exports / f"anomaly_exclusion_audience_{day}.csv").is_file()

    # Off by default: the loyalty scores still hold the flagged users.
    flagged = set(graph.table("user_anomaly_scores", LAST_DAY).query("flagged")["user_id"])
    everyone = graph.table("loyalty_scores", LAST_DAY)
    assert flagged <= set(everyone["user_id"])

    result = run(graph, ["loyalty_scores"], loyalty_scores={"exclude_flagged_users": True})
    assert result.success
    kept = graph.table("loyalty_scores", LAST_DAY)
    assert set(kept["user_id"]) == set(everyone["user_id"]) - flagged
    assert kept["score_rank"].max() == len(kept)
    assert (kept["coupon_tier"] == "A").sum() == int(len(kept) * 0.10)
    checks = {check.check_name: check.passed for check in result.get_asset_check_evaluations()}
    assert checks["scores_valid"], checks


@pytest.mark.slow
def test_loyalty_scores_refuse_to_exclude_flagged_users_of_a_day_never_scored_for_anomalies(graph):
    assert run(
        graph,
        [
            "raw_events",
            "user_daily_activity",
            "user_profile",
            "user_features",
            "loyalty_training_set",
            "loyalty_model",
        ],
    ).success
    result = run(
        graph, ["loyalty_scores"], raise_on_error=False, loyalty_scores={"exclude_flagged_users": True}
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"user_anomaly_scores has no partition {FIRST_DAY}: run anomaly_daily_job" in failure
