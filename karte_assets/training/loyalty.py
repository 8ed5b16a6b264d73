"""Train and validate the loyalty model: LightGBM on labelled snapshots, judged on a later slice.

Pure functions over a pandas frame, so they run the same in the local subprocess, in a Vertex AI
container and in tests. Needs only numpy, pandas and lightgbm (no Dagster). The asset modules import
this module's constants, so lightgbm is imported by the functions that train, not at import (it
pulls scikit-learn and SciPy: seconds of the code location's load).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from karte_assets.training.evaluation import validation_summary

if TYPE_CHECKING:
    import lightgbm as lgb

NON_FEATURES = ("snapshot_date", "label", "client_id", "user_id")
# The plain ranking the model has to beat: users who bought most in the last 90 days come first.
BASELINE_FEATURE = "purchases_90d"


@dataclass(frozen=True)
class TrainedModel:
    booster: lgb.Booster
    metrics: dict[str, float | int | str]
    feature_importance: dict[str, float]
    # Binned validation results for the model's charts (see evaluation.py); no row-level data.
    validation_summary: dict[str, object]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, ties counted as half (as for a frequency ranking)."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both positive and negative labels")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_rounds(
    log: Callable[[str], None], num_boost_round: int
) -> Callable[[lgb.callback.CallbackEnv], None]:
    """A LightGBM callback that reports every tenth of the rounds through ``log`` (the run log under
    Pipes; LightGBM's own log_evaluation prints to stdout, which reaches only the raw compute logs)."""
    period = max(1, num_boost_round // 10)
    started = time.perf_counter()

    def callback(env: lgb.callback.CallbackEnv) -> None:
        done = env.iteration + 1
        if done % period == 0 or done == 1:
            results = ", ".join(
                f"{data} {metric} {value:.4f}" for data, metric, value, _ in env.evaluation_result_list
            )
            log(f"round {done}/{num_boost_round}: {results} ({time.perf_counter() - started:.1f}s elapsed)")

    return callback


def time_split(frame: pd.DataFrame, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validation = the newest snapshot; training = snapshots whose labels ended before it began.

    So validation mimics scoring: the model only knows outcomes up to the validation snapshot.
    """
    snapshot = pd.to_datetime(frame["snapshot_date"])
    newest = snapshot.max()
    validation = frame[snapshot == newest]
    train = frame[snapshot <= newest - pd.Timedelta(days=horizon_days)]
    return train, validation


def learner_params(params: Mapping[str, object]) -> dict[str, object]:
    """LightGBM parameters for the device asked for, with the thread count resolved on this machine.

    CPU (the default) is deterministic: ``deterministic`` with ``force_row_wise`` gives the same
    model from the same data and parameters (LightGBM's docs for ``deterministic``; we promise it
    for the same ``num_threads``, which is recorded). The OpenCL GPU learner ignores
    ``deterministic`` and builds histograms col-wise in float arithmetic whose order varies, so its
    refits are not bit-identical: LightGBM's warnings stay visible there rather than silenced.
    """
    device = params.get("device_type", "cpu")
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device_type {device!r} is not 'cpu' or 'gpu'")
    resolved = {"objective": "binary", "metric": "auc", **params, "device_type": device}
    resolved["num_threads"] = int(params.get("num_threads") or os.cpu_count() or 1)
    if device == "cpu":
        return {"verbosity": -1, **resolved, "deterministic": True, "force_row_wise": True}
    return {
        **{k: v for k, v in resolved.items() if k not in ("deterministic", "force_row_wise")},
        "verbosity": 0,  # warnings, e.g. LightGBM's notes on the GPU learner
    }


def _train(params: Mapping[str, object], *args: object, **kwargs: object) -> lgb.Booster:
    import lightgbm as lgb

    try:
        return lgb.train(dict(params), *args, **kwargs)
    except lgb.basic.LightGBMError as error:
        if params.get("device_type") == "gpu" and "OpenCL" in str(error):
            # No silent fallback to CPU: that would be a slower, different model than asked for,
            # on a machine paid for its GPU.
            raise RuntimeError(
                f"device_type gpu: LightGBM's GPU learner found no usable OpenCL device ({error}). "
                "Train on a worker pool with an accelerator and the training image (NVIDIA OpenCL ICD), "
                "or on one without accelerators (the CPU learner)."
            ) from error
        raise


def train_loyalty_model(
    frame: pd.DataFrame,
    horizon_days: int,
    params: Mapping[str, object],
    num_boost_round: int,
    early_stopping_rounds: int,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    import lightgbm as lgb

    features = [column for column in frame.columns if column not in NON_FEATURES]
    train, validation = time_split(frame, horizon_days)
    if train.empty:
        raise ValueError(f"no training snapshot at least {horizon_days} days before the validation one")
    log(
        f"training on {len(train)} rows ({train['snapshot_date'].nunique()} snapshots), "
        f"validating on {len(validation)} rows of {validation['snapshot_date'].iloc[0]}"
    )
    lgb_params = learner_params(params)
    device = lgb_params["device_type"]
    log(f"LightGBM on {device} with {lgb_params['num_threads']} threads")
    train_set = lgb.Dataset(train[features], label=train["label"])
    validation_set = lgb.Dataset(validation[features], label=validation["label"], reference=train_set)
    evaluated = _train(
        lgb_params,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[validation_set],
        callbacks=[
            lgb.early_stopping(early_stopping_rounds, verbose=False),
            log_rounds(log, num_boost_round),
        ],
    )
    best_iteration = max(1, evaluated.best_iteration)
    predictions = evaluated.predict(validation[features], num_iteration=best_iteration)
    baseline_scores = validation[BASELINE_FEATURE].fillna(0).to_numpy()
    validation_auc = roc_auc(validation["label"], predictions)
    baseline_auc = roc_auc(validation["label"], baseline_scores)
    log(
        f"best round {best_iteration} of at most {num_boost_round}: validation AUC "
        f"{validation_auc:.4f} vs {BASELINE_FEATURE} ranking {baseline_auc:.4f}; refitting on all {len(frame)} rows"
    )
    # The scoring model learns from every snapshot, the validation one included, for as many
    # rounds as validation found best.
    final = _train(
        lgb_params, lgb.Dataset(frame[features], label=frame["label"]), num_boost_round=best_iteration
    )
    importance = final.feature_importance(importance_type="gain")
    return TrainedModel(
        booster=final,
        metrics={
            "validation_auc": validation_auc,
            "baseline_auc": baseline_auc,
            "baseline": BASELINE_FEATURE,
            "best_iteration": best_iteration,
            "train_rows": len(train),
            "validation_rows": len(validation),
            "validation_positive_rate": float(validation["label"].mean()),
            "refit_rows": len(frame),
            "device_type": device,
            "num_threads": lgb_params["num_threads"],
            # Whether refitting the same data gives the same model file (and model version).
            "reproducible": device == "cpu",
        },
        feature_importance={name: float(gain) for name, gain in zip(features, importance, strict=True)},
        validation_summary=validation_summary(
            validation["label"].to_numpy(), predictions, baseline_scores, BASELINE_FEATURE
        ),
    )


def snapshot_dates(
    day: dt.date,
    first_day: dt.date,
    horizon_days: int,
    every_days: int,
    max_snapshots: int,
    min_history_days: int,
) -> tuple[dt.date, dt.date] | None:
    """The first and last snapshot day for the training set of ``day``, or None if history is too short.

    The last snapshot is ``day - horizon`` so its label window ends on ``day``: nothing later is read.
    """
    last = day - dt.timedelta(days=horizon_days)
    earliest_allowed = first_day + dt.timedelta(days=min_history_days)
    if last < earliest_allowed:
        return None
    steps = min(max_snapshots - 1, (last - earliest_allowed).days // every_days)
    return last - dt.timedelta(days=steps * every_days), last
