"""The retrain cadence: a model every ``retrain_every_days`` (or on demand); daily scores with the
newest accepted model, and the score table says which model and from which day."""

import datetime as dt

import pandas as pd
import pytest
from dagster import Definitions

from karte_assets.assets.training import ModelConfig, why_not_due
from karte_assets.definitions import ASSETS
from karte_assets.presets import PRESET_JOBS
from karte_assets_tests.graph import FIRST_DAY, config_with, days

DAY = dt.date(2026, 7, 10)
# With the tests' fast config the first labelled history is on FIRST_DAY + 14 (see graph.py).
FIRST_MODEL_DAY = FIRST_DAY + dt.timedelta(days=14)


def test_a_model_is_due_first_then_every_n_days_or_on_demand():
    weekly = ModelConfig()
    assert weekly.retrain_every_days == 7
    assert why_not_due(DAY, None, weekly) is None
    assert why_not_due(DAY, DAY - dt.timedelta(days=7), weekly) is None
    assert why_not_due(DAY, DAY - dt.timedelta(days=30), weekly) is None
    reason = why_not_due(DAY, DAY - dt.timedelta(days=6), weekly)
    assert reason and "2026-07-04" in reason and "6 days ago" in reason
    assert why_not_due(DAY, DAY - dt.timedelta(days=1), ModelConfig(retrain_every_days=1)) is None
    assert why_not_due(DAY, DAY - dt.timedelta(days=1), ModelConfig(retrain_now=True)) is None


@pytest.mark.slow
def test_a_backfill_trains_only_the_days_the_cadence_asks_for_and_scores_with_the_newest_model(graph):
    last = FIRST_MODEL_DAY + dt.timedelta(days=4)
    config = config_with(loyalty_model={"retrain_every_days": 3})
    result = graph.materialize(FIRST_DAY, last, run_config=config)
    assert result.success

    models = graph.table("loyalty_model").set_index("partition_date")
    trained = sorted(models.index[models["status"] == "trained"].date)
    assert trained == [FIRST_MODEL_DAY, FIRST_MODEL_DAY + dt.timedelta(days=3)]
    between = models.loc[str(FIRST_MODEL_DAY + dt.timedelta(days=1))]
    assert between["status"] == "not_due" and str(FIRST_MODEL_DAY) in between["note"]
    metadata = result.asset_materializations_for_node("loyalty_model")[0].metadata
    assert metadata["models_trained"].value == 2 and metadata["retrain_every_days"].value == 3

    scores = graph.table("loyalty_scores")
    per_day = scores.groupby("partition_date")[["model_version", "model_date"]].agg(set)
    version = dict(zip(models.index.date, models["model_version"], strict=True))
    for day in (FIRST_MODEL_DAY, FIRST_MODEL_DAY + dt.timedelta(days=2)):
        row = per_day.loc[str(day)]
        assert row["model_version"] == {version[FIRST_MODEL_DAY]}
        assert {d.date() for d in row["model_date"]} == {FIRST_MODEL_DAY}
    newest = per_day.loc[str(last)]
    assert newest["model_version"] == {version[FIRST_MODEL_DAY + dt.timedelta(days=3)]}
    assert {d.date() for d in newest["model_date"]} == {FIRST_MODEL_DAY + dt.timedelta(days=3)}
    before = per_day.loc[str(FIRST_MODEL_DAY - dt.timedelta(days=1))]
    assert before["model_version"] == {"baseline:purchases_90d"}
    scored = result.asset_materializations_for_node("loyalty_scores")[0].metadata
    assert scored["model_day"].value == str(FIRST_MODEL_DAY + dt.timedelta(days=3))

    # One scoring job per model, not per day: days 14-16 in one, 17-18 in the other ...
    assert scoring_jobs(graph, result) == 2
    # ... and the same scores, ranks and tiers as scoring each of those days in a run of its own.
    range_run = {name: graph.table(name) for name in ("loyalty_raw_scores", "loyalty_scores")}
    for day in days(FIRST_MODEL_DAY, last):
        alone = graph.materialize(day, run_config=config, selection=["loyalty_scores"])
        assert scoring_jobs(graph, alone) == 1
    for name, table in range_run.items():
        pd.testing.assert_frame_equal(graph.table(name), table, obj=name)


def scoring_jobs(graph, result) -> int:
    """The scoring jobs loyalty_scores started in the run of ``result`` (each opens Dagster Pipes once)."""
    return sum(
        entry.step_key == "loyalty_scores"
        and "successfully opened dagster pipes" in (entry.user_message or "")
        for entry in graph.instance.all_logs(result.run_id)
    )


@pytest.mark.slow
def test_the_retrain_now_preset_trains_on_a_day_the_cadence_would_skip(graph):
    day = FIRST_MODEL_DAY + dt.timedelta(days=1)
    assert graph.materialize(FIRST_DAY, day).success
    assert graph.table("loyalty_model", day)["status"].iloc[0] == "not_due"

    presets = Definitions(assets=ASSETS, jobs=PRESET_JOBS, resources=graph.resources)
    job = presets.resolve_job_def("preset_retrain_now")
    run_config = {"ops": {"loyalty_model": {"config": config_with()["ops"]["loyalty_model"]["config"]}}}
    run_config["ops"]["loyalty_model"]["config"]["retrain_now"] = True
    assert job.execute_in_process(
        partition_key=day.isoformat(), instance=graph.instance, run_config=run_config
    ).success
    model = graph.table("loyalty_model", day).iloc[0]
    assert model["status"] == "trained"
    scores = graph.table("loyalty_scores", day)
    assert set(scores["model_version"]) == {model["model_version"]}
    assert {d.date() for d in scores["model_date"]} == {day}
