"""Bad configuration fails the run before anything is written, with a message that names it."""

import datetime as dt

import pytest

from karte_assets_tests.graph import FIRST_DAY, config_with, failure_message


@pytest.mark.parametrize(
    "config, named",
    [
        (
            config_with(loyalty_scores={"tier_a_share": 0.7, "tier_b_share": 0.5}),
            "over 100 % of the audience",
        ),
        (config_with(loyalty_training_set={"horizon_days": 0}), "horizon_days"),
        (config_with(user_features={"audience_days": 0}), "audience_days"),
        (config_with(raw_events={"synthetic_new_users_per_day": -1.0}), "synthetic_new_users_per_day"),
    ],
)
def test_a_bad_value_anywhere_in_the_run_fails_it_before_the_first_write(graph, config, named):
    result = graph.materialize(
        FIRST_DAY, FIRST_DAY + dt.timedelta(days=1), run_config=config, raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert named in message
    assert not graph.warehouse.partition_exists("raw_events", FIRST_DAY)


def test_an_inverted_range_is_refused(graph):
    result = graph.materialize(FIRST_DAY + dt.timedelta(days=3), FIRST_DAY, raise_on_error=False)
    assert not result.success
    assert "2026-06-04...2026-06-01 is inverted" in failure_message(result)
