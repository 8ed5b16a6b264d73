"""Rolling-origin backtest: each forecaster forecasts the last ``windows`` stretches of ``horizon``
periods from only what came before each, and the one with the lowest mean MASE is chosen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from karte_assets.demand.forecasters import LEVELS, Forecaster
from karte_assets.demand.metrics import series_scores, summarise

SELECTION_METRIC = "mase"


@dataclass(frozen=True)
class BacktestResult:
    """``scores``: one row per forecaster and window; ``summary``: their means per forecaster, best first."""

    scores: pd.DataFrame
    summary: pd.DataFrame
    winner: str
    reason: str


def cutoffs(history: pd.DataFrame, horizon: int, windows: int) -> list[pd.Timestamp]:
    """The forecast origins: the last ``windows`` non-overlapping stretches of ``horizon`` periods end
    on the last period of ``history``."""
    if horizon < 1 or windows < 1:
        raise ValueError(f"horizon ({horizon}) and windows ({windows}) must be at least 1")
    dates = np.sort(history["ds"].unique())
    needed = horizon * windows
    if len(dates) <= needed:
        raise ValueError(
            f"the history has {len(dates)} periods; a backtest of {windows} windows of {horizon} needs more than {needed}"
        )
    return [pd.Timestamp(dates[-1 - k * horizon]) for k in range(windows, 0, -1)]


def backtest(
    history: pd.DataFrame,
    forecasters: Sequence[Forecaster],
    horizon: int,
    windows: int,
    season_length: int,
    levels: tuple[int, ...] = LEVELS,
) -> BacktestResult:
    """Score every forecaster on every window of ``history`` (dense: ``unique_id``, ``ds``, ``y``)."""
    dates = np.sort(history["ds"].unique())
    rows = []
    for window, cutoff in enumerate(cutoffs(history, horizon, windows), start=1):
        end = dates[np.searchsorted(dates, cutoff.to_datetime64()) + horizon]
        past = history[history["ds"] <= cutoff]
        actual = history[(history["ds"] > cutoff) & (history["ds"] <= end)]
        for forecaster in forecasters:
            predicted = forecaster.forecast(past, horizon, levels).merge(actual, on=["unique_id", "ds"])
            scores = series_scores(past, predicted, season_length, levels)
            rows.append(
                {"model": forecaster.name, "window": window, "cutoff": cutoff} | summarise(scores, levels)
            )
    scores = pd.DataFrame(rows)
    summary = (
        scores.drop(columns=["window", "cutoff"])
        .groupby("model", sort=False)
        .mean()
        .sort_values(SELECTION_METRIC, kind="stable")
        .reset_index()
    )
    return BacktestResult(scores, summary, *_choice(summary, horizon, windows))


def _choice(summary: pd.DataFrame, horizon: int, windows: int) -> tuple[str, str]:
    """The forecaster with the lowest mean MASE, and why, in one sentence with the numbers."""
    best, others = summary.iloc[0], summary.iloc[1:]
    beaten = ", ".join(f"{row.model} {row.mase:.3f}" for row in others.itertuples())
    reason = f"{best.model} has the lowest MASE ({best.mase:.3f}) over {windows} rolling windows of {horizon} periods"
    if beaten:
        reason += f" (vs {beaten})"
    reason += f"; its WRMSSE is {best.wrmsse:.3f}"
    if "coverage_80" in summary:
        reason += f", its 80 % intervals covered {best.coverage_80:.0%} of the actuals"
    return str(best.model), reason
