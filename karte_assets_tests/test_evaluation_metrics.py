"""The real-log evaluation's metrics (evaluation/run.py) on cases small enough to count by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad

from evaluation.run import (
    completejourney_baskets,
    completejourney_events,
    paired_bootstrap,
    roc_auc,
    stable_log_a0,
    top_decile_lift,
)


def test_roc_auc_counts_the_pairs_a_buyer_wins_and_ties_as_half():
    # Buyers score 4 and 2, others 3 and 1: of the 4 buyer/other pairs the buyer ranks higher in 3.
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([4.0, 3.0, 2.0, 1.0])) == 0.75
    assert roc_auc(np.array([1, 0, 1, 0]), np.ones(4)) == 0.5


def test_top_decile_lift_is_the_top_tenths_buying_rate_over_everyones():
    labels = np.zeros(20, dtype=int)
    labels[[3, 7]] = 1  # 2 buyers in 20: 10 %
    scores = np.arange(20.0)
    scores[[3, 7]] = [100.0, 99.0]  # both in the top 2 (10 %): a rate of 100 %, lift 10
    assert top_decile_lift(labels, scores) == 10.0
    # All tied: the top tenth holds the tied rows' rate, the overall rate, lift 1.
    assert top_decile_lift(labels, np.ones(20)) == 1.0


def test_paired_bootstrap_is_zero_for_one_ranking_and_above_zero_for_a_clearly_better_one():
    rng = np.random.default_rng(0)
    labels = (rng.random(2_000) < 0.2).astype(int)
    noise = rng.random(2_000)
    # The same ranking against itself: every resample gives a difference of exactly 0.
    same = paired_bootstrap(labels, noise, noise.copy(), rounds=30)
    assert same == {"roc_auc": (0.0, 0.0), "top_decile_lift": (0.0, 0.0)}
    better = paired_bootstrap(labels, labels + noise, noise, rounds=30)
    assert better["roc_auc"][0] > 0.3 and better["top_decile_lift"][0] > 2


# Pareto/NBD parameters (r, alpha, s, beta) lifetimes fits to The Complete Journey at 2017-06-30, and
# CDNOW's published ones, whose alpha is the larger: both branches of A_0.
FITTED = (1.417723, 9.522408, 0.050302, 308.527855)
CDNOW = (0.55, 10.58, 0.61, 11.67)


@pytest.mark.parametrize(
    "params, x, t_x, T",
    [
        (FITTED, 2, 30.0, 180.0),
        (FITTED, 113, 170.0, 180.0),
        (CDNOW, 150, 20.0, 30.0),
        (CDNOW[::-1], 3, 5.0, 40.0),
    ],
)
def test_pareto_nbd_log_a0_is_the_integral_it_stands_for(params, x, t_x, T):
    # A_0 = (r + s + x) * integral from t_x to T of (alpha + y)^-(r + x) (beta + y)^-(s + 1) dy (the
    # likelihood's s / (r + s + x) * A_0 is the chance to die in (t_x, T]); the integrand is scaled
    # by (alpha + t_x)^(r + x) to stay inside floating point, and the scale taken back in logs.
    r, alpha, s, beta = params
    scaled, _ = quad(
        lambda y: ((alpha + t_x) / (alpha + y)) ** (r + x) * (beta + y) ** -(s + 1),
        t_x,
        T,
        epsabs=0,
        epsrel=1e-13,
    )
    expected = np.log(r + s + x) + np.log(scaled) - (r + x) * np.log(alpha + t_x)
    assert stable_log_a0(params, np.array([x]), np.array([t_x]), np.array([T]))[0] == pytest.approx(
        expected, rel=1e-9
    )


def test_pareto_nbd_log_a0_of_a_heavy_buyer_who_bought_on_the_cut_off_day_is_minus_infinity():
    # t_x = T: no time left to die unseen, A_0 = 0. lifetimes 0.11.3 gives NaN here (113 repeat days).
    assert stable_log_a0(
        FITTED, np.array([113.0, 2.0]), np.array([180.0, 180.0]), np.array([180.0, 180.0])
    ).tolist() == [
        -np.inf,
        -np.inf,
    ]


def test_a_complete_journey_basket_is_dated_and_timed_on_the_new_york_clock():
    # The shipped times are UTC instants (the R package builds them with tz = "America/New_York"):
    # 02:30 UTC on 07-01 is 22:30 on 06-30 in New York (EDT), 04:30 UTC on 01-02 is 23:30 on 01-01 (EST).
    items = pd.DataFrame(
        {
            "basket_id": [1, 1, 2],
            "household_id": [7, 7, 8],
            "transaction_timestamp": pd.to_datetime(
                ["2017-07-01 02:30:00", "2017-07-01 02:31:00", "2017-01-02 04:30:00"]
            ),
            "store_id": [1, 1, 2],
            "product_id": [10, 11, 12],
            "quantity": [1, 2, 1],
            "sales_value": [1.5, 2.0, 3.0],
            "retail_disc": [0.0, 0.5, 0.0],
            "coupon_disc": [0.0, 0.0, 0.0],
        }
    )
    baskets = completejourney_baskets(items)
    assert baskets["date"].astype(str).tolist() == ["2017-06-30", "2017-01-01"]
    assert completejourney_events(baskets)["event_ts"].tolist() == [
        "2017-06-30T22:30:00-04:00",
        "2017-01-01T23:30:00-05:00",
    ]
