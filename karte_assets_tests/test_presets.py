"""Presets: jobs of the code location whose config is filled in, and what running one does."""

import pytest
from dagster import Definitions, validate_run_config

from karte_assets.definitions import ASSETS, defs
from karte_assets.presets import PRESET_JOBS
from karte_assets_tests.graph import FIRST_DAY


@pytest.mark.parametrize("preset", PRESET_JOBS, ids=lambda job: job.name)
def test_each_preset_is_a_described_job_of_the_code_location_with_valid_config_for_any_day(preset):
    job = defs.resolve_job_def(preset.name)
    assert job.description and job.partitions_def is not None
    # What the launchpad starts from for a day: only the preset's overrides, valid for the job.
    config = job.get_run_config_for_partition_key(FIRST_DAY.isoformat())
    assert config["ops"]
    for op in config["ops"].values():
        assert 1 <= len(op["config"]) <= 3
    assert validate_run_config(job, config)


def test_the_small_budget_preset_re_tiers_a_scored_day_with_5_and_10_percent(graph):
    assert graph.materialize(FIRST_DAY).success
    before = graph.table("loyalty_scores", FIRST_DAY)
    presets = Definitions(assets=ASSETS, jobs=PRESET_JOBS, resources=graph.resources)
    job = presets.resolve_job_def("preset_small_coupon_budget")
    assert job.execute_in_process(partition_key=FIRST_DAY.isoformat(), instance=graph.instance).success

    after = graph.table("loyalty_scores", FIRST_DAY)
    tiers = after["coupon_tier"].value_counts()
    assert tiers["A"] == int(len(after) * 0.05) and tiers["A"] + tiers["B"] == int(len(after) * 0.15)
    assert before["coupon_tier"].value_counts()["A"] == int(len(before) * 0.10)
    assert after["loyal_score"].tolist() == before["loyal_score"].tolist()
