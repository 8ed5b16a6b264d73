"""Binned summaries of a validation slice, small enough to travel back in a Pipes message.

They hold what the model's charts need (cumulative gain against the baseline, calibration) and
never a row of user data: a few dozen numbers whatever the size of the slice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GAIN_POINTS = 10
CALIBRATION_BINS = 10


def gain_curve(labels: np.ndarray, scores: np.ndarray, points: int = GAIN_POINTS) -> list[float]:
    """Share of all positives among the top 0, 1/points, ..., all of the users ranked by score.

    Users with the same score share their positives evenly, which is the expected gain of a random
    order among ties: a purchase count ranks many users equally, and no tie-break should flatter it.
    """
    by_score = (
        pd.DataFrame({"score": np.asarray(scores, dtype=float), "label": np.asarray(labels, dtype=float)})
        .groupby("score", sort=True)["label"]
        .agg(["size", "sum"])
        .iloc[::-1]
    )
    users = np.concatenate([[0.0], by_score["size"].cumsum().to_numpy(dtype=float)])
    found = np.concatenate([[0.0], by_score["sum"].cumsum().to_numpy(dtype=float)])
    if found[-1] == 0:
        raise ValueError("a gain curve needs at least one positive label")
    targets = np.linspace(0, users[-1], points + 1)
    return [round(float(share), 4) for share in np.interp(targets, users, found) / found[-1]]


def calibration_bins(
    labels: np.ndarray, predictions: np.ndarray, bins: int = CALIBRATION_BINS
) -> dict[str, list[float]]:
    """Equal-count bins of predicted probability: mean prediction, observed positive rate, users."""
    frame = pd.DataFrame({"predicted": np.asarray(predictions, dtype=float), "label": labels})
    order = frame["predicted"].rank(method="first").to_numpy()
    frame["bin"] = np.ceil(order * min(bins, len(frame)) / len(frame))
    grouped = frame.groupby("bin").agg(
        predicted=("predicted", "mean"), observed=("label", "mean"), users=("label", "size")
    )
    return {
        "predicted": [round(float(v), 4) for v in grouped["predicted"]],
        "observed": [round(float(v), 4) for v in grouped["observed"]],
        "users": [int(v) for v in grouped["users"]],
    }


def validation_summary(
    labels: np.ndarray, predictions: np.ndarray, baseline_scores: np.ndarray, baseline: str
) -> dict[str, object]:
    """Gain of the model and of the baseline ranking, and the model's calibration, on one slice."""
    return {
        "positive_rate": round(float(np.mean(labels)), 4),
        "baseline": baseline,
        "gain": {
            "model": gain_curve(labels, predictions),
            "baseline": gain_curve(labels, baseline_scores),
        },
        "calibration": calibration_bins(labels, predictions),
    }
