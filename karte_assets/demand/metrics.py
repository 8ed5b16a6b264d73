"""Forecast accuracy and interval metrics, per series and over a panel.

MASE (Hyndman & Koehler 2006): the mean absolute error over the horizon, scaled by the in-sample
mean absolute error of the seasonal naive forecast (lag ``season_length``). RMSSE and its weighted
sum WRMSSE follow the M5 competition (Makridakis et al. 2022): the root mean squared error scaled by
the in-sample mean squared one-step difference, counted from a series' first non-zero value, and
weighted by each series' share of the units sold in the last ``horizon`` periods before the origin
(the M5 weights use dollar sales; the events carry units only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def mase_scale(insample: np.ndarray, season_length: int) -> float:
    """Mean absolute seasonal difference of the history; NaN when there is none or it is zero."""
    insample = np.asarray(insample, dtype=float)
    if len(insample) <= season_length:
        return float("nan")
    scale = float(np.mean(np.abs(insample[season_length:] - insample[:-season_length])))
    return scale if scale > 0 else float("nan")


def rmsse_scale(insample: np.ndarray) -> float:
    """Mean squared one-step difference from the first non-zero value on; NaN when there is none."""
    insample = np.asarray(insample, dtype=float)
    nonzero = np.flatnonzero(insample)
    if len(nonzero) == 0:
        return float("nan")
    active = insample[nonzero[0] :]
    if len(active) < 2:
        return float("nan")
    scale = float(np.mean(np.diff(active) ** 2))
    return scale if scale > 0 else float("nan")


def covered(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether each actual lies inside its closed interval [lo, hi]."""
    actual, lo, hi = (np.asarray(a, dtype=float) for a in (actual, lo, hi))
    if np.any(lo > hi):
        raise ValueError("an interval's lower bound is above its upper bound")
    return (lo <= actual) & (actual <= hi)


def series_scores(
    history: pd.DataFrame, forecast: pd.DataFrame, season_length: int, levels: tuple[int, ...]
) -> pd.DataFrame:
    """One row per series of ``forecast`` (joined to its actuals ``y``): MASE, RMSSE, weight and
    the share of actuals inside each level's interval. ``history`` is what the forecaster saw."""
    rows = []
    # One pass over each frame: filtering the forecast per series is quadratic at 10,000 products.
    windows = dict(tuple(forecast.groupby("unique_id", sort=False)))
    for uid, past in history.sort_values("ds").groupby("unique_id", sort=False):
        window = windows.get(uid)
        if window is None:
            continue
        y = past["y"].to_numpy(dtype=float)
        error = window["y"].to_numpy(dtype=float) - window["forecast"].to_numpy(dtype=float)
        row = {
            "unique_id": uid,
            "mase": float(np.mean(np.abs(error))) / mase_scale(y, season_length),
            "rmsse": float(np.sqrt(np.mean(error**2) / rmsse_scale(y))),
            "units": float(y[-len(window) :].sum()),
        }
        for level in levels:
            inside = covered(window["y"], window[f"lo_{level}"], window[f"hi_{level}"])
            row[f"coverage_{level}"] = float(inside.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame, levels: tuple[int, ...]) -> dict[str, float]:
    """The panel figures of one window's ``series_scores``: mean MASE over the series with a finite
    scale, WRMSSE, and interval coverage over all forecast points (every series has as many)."""
    finite = scores[np.isfinite(scores["rmsse"])]
    weights = finite["units"] / finite["units"].sum() if finite["units"].sum() > 0 else np.nan
    summary = {
        "mase": float(scores["mase"][np.isfinite(scores["mase"])].mean()),
        "wrmsse": float((weights * finite["rmsse"]).sum()),
    }
    for level in levels:
        summary[f"coverage_{level}"] = float(scores[f"coverage_{level}"].mean())
    return summary
