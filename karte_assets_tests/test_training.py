"""The training functions the entrypoint runs, on frames made here."""

import datetime as dt
import itertools
import os

import numpy as np
import pandas as pd
import pytest

from karte_assets.assets.training import ModelConfig
from karte_assets.training.loyalty import roc_auc, snapshot_dates, time_split, train_loyalty_model


def brute_force_auc(labels, scores) -> float:
    pairs = [(p, n) for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_roc_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties, like a purchase count
    assert roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))
    with pytest.raises(ValueError, match="both"):
        roc_auc(np.ones(3), np.arange(3))


def test_snapshots_end_horizon_days_before_the_day_and_respect_the_start_of_history():
    start = dt.date(2026, 6, 1)
    assert snapshot_dates(dt.date(2026, 6, 20), start, 28, 7, 8, 0) is None
    first, last = snapshot_dates(dt.date(2026, 8, 29), start, 28, 7, 8, 14)
    assert last == dt.date(2026, 8, 1)
    assert first == dt.date(2026, 6, 20) and (last - first).days % 7 == 0
    assert snapshot_dates(dt.date(2026, 12, 1), start, 28, 7, 3, 14)[0] == dt.date(2026, 10, 20)


def snapshots_frame(rng, snapshot_days, users=400) -> pd.DataFrame:
    frames = []
    for day in snapshot_days:
        recency = rng.integers(0, 60, users)
        purchases = rng.poisson(2, users)
        label = (rng.random(users) < 1 / (1 + np.exp((recency - 15) / 5))).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "snapshot_date": day,
                    "user_id": [f"u{i}" for i in range(users)],
                    "label": label,
                    "days_since_last_seen": recency,
                    "purchases_90d": purchases,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_validation_is_the_newest_snapshot_and_training_ends_a_horizon_before_it():
    days = [dt.date(2026, 6, 1) + dt.timedelta(days=7 * i) for i in range(6)]
    train, validation = time_split(snapshots_frame(np.random.default_rng(0), days), horizon_days=14)
    assert set(validation["snapshot_date"]) == {days[-1]}
    assert max(train["snapshot_date"]) == days[-3]


def test_the_model_learns_recency_that_a_frequency_ranking_misses():
    days = [dt.date(2026, 6, 1) + dt.timedelta(days=7 * i) for i in range(6)]
    frame = snapshots_frame(np.random.default_rng(0), days)
    trained = train_loyalty_model(
        frame,
        14,
        {"num_threads": 1, "seed": 1, "deterministic": True, "min_data_in_leaf": 20},
        100,
        10,
        log=lambda _: None,
    )
    assert trained.metrics["validation_auc"] > 0.8
    assert abs(trained.metrics["baseline_auc"] - 0.5) < 0.1
    assert trained.feature_importance["days_since_last_seen"] > trained.feature_importance["purchases_90d"]


def train_small(frame, params):
    return train_loyalty_model(frame, 14, params, 50, 10, log=lambda _: None)


def test_the_default_is_the_deterministic_cpu_learner_on_every_cpu_of_the_machine():
    days = [dt.date(2026, 6, 1) + dt.timedelta(days=7 * i) for i in range(6)]
    frame = snapshots_frame(np.random.default_rng(0), days)
    params = ModelConfig().lightgbm_params()
    first, second = train_small(frame, params), train_small(frame, params)
    assert first.booster.model_to_string() == second.booster.model_to_string()
    assert first.metrics["device_type"] == "cpu" and first.metrics["reproducible"] is True
    assert first.metrics["num_threads"] == os.cpu_count()
    assert f"[num_threads: {os.cpu_count()}]" in first.booster.model_to_string()


def test_the_gpu_learner_without_an_opencl_device_fails_with_a_clear_message():
    # This machine has no GPU: LightGBM's own GPU learner raises "No OpenCL device found".
    days = [dt.date(2026, 6, 1) + dt.timedelta(days=7 * i) for i in range(6)]
    frame = snapshots_frame(np.random.default_rng(0), days)
    with pytest.raises(
        RuntimeError,
        match=r"device_type gpu: LightGBM's GPU learner found no usable OpenCL device \(No OpenCL device "
        r"found\)\. Train on a worker pool with an accelerator",
    ):
        train_small(frame, {**ModelConfig().lightgbm_params(), "device_type": "gpu"})
