"""The forecasters: a global LightGBM model (mlforecast) and two statistical baselines (statsforecast).

Each takes a dense history (``unique_id``, ``ds``, ``y``) and returns, per series and each of the
next ``horizon`` periods, a point ``forecast`` and ``lo_<level>``/``hi_<level>`` bounds, all >= 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pandas as pd

LEVELS = (80, 95)
OUTPUT_COLUMNS = ["unique_id", "ds", "forecast"] + [f"{b}_{lv}" for lv in LEVELS for b in ("lo", "hi")]


def week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    """ISO week number, the calendar feature that places weekly holidays (pandas dropped ``.week``)."""
    return dates.isocalendar().week.to_numpy(dtype=np.int32)


@dataclass(frozen=True)
class Calendar:
    """The sampling of a panel and the features that follow from it.

    freq: pandas frequency of ``ds`` ("D", "W-FRI"). season_length: periods per season (MASE's
    seasonal naive, the baselines' season). lags, rolling_means ({lag: windows}) and date_features
    are the LightGBM model's inputs.
    """

    freq: str
    season_length: int
    lags: tuple[int, ...]
    rolling_means: dict[int, tuple[int, ...]]
    date_features: tuple[str | Callable, ...]


DAILY = Calendar(
    freq="D",
    season_length=7,
    lags=(1, 2, 3, 4, 5, 6, 7, 14, 21, 28),
    rolling_means={1: (7, 28), 7: (4,)},
    # dayofweek: the week's pattern; day: paydays and month ends; month: the year's season.
    date_features=("dayofweek", "day", "month"),
)


def weekly(freq: str = "W-SUN") -> Calendar:
    """Weekly sampling ending on the weekday of ``freq``; the year is the season."""
    return Calendar(
        freq=freq,
        season_length=52,
        lags=(1, 2, 3, 4, 52),
        rolling_means={1: (4, 13), 52: (3,)},
        date_features=(week_of_year, "month"),
    )


class Forecaster(Protocol):
    name: str

    def forecast(self, history: pd.DataFrame, horizon: int, levels: tuple[int, ...] = LEVELS) -> pd.DataFrame:
        """``OUTPUT_COLUMNS`` for each series of ``history`` and each of the next ``horizon`` periods."""


def _clip(frame: pd.DataFrame) -> pd.DataFrame:
    """Demand is never negative: floor the point forecast and every bound at zero."""
    numeric = frame.columns.drop(["unique_id", "ds"])
    frame[numeric] = frame[numeric].clip(lower=0.0)
    return frame


@dataclass(frozen=True)
class LightGBMForecaster:
    """One LightGBM model for every series (mlforecast), recursive over the horizon, with split
    conformal intervals.

    Each series is divided by its mean level, so one model serves products of any volume; the
    Tweedie objective suits the many zero days of intermittent demand. Intervals: the model is also
    fitted on the history less its last ``horizon`` periods (and, for a small panel, less each of
    the stretches before) and forecasts them; those out-of-sample
    errors, divided by each series' mean absolute one-step change, are pooled over series and
    steps, and their quantiles (scaled back per series) are the bounds of the final forecast. The
    calibration fits use at most ``calibration_series`` series (chosen at random, ``seed``).
    """

    calendar: Calendar = DAILY
    name: str = "lightgbm"
    params: dict = field(
        default_factory=lambda: {
            "objective": "tweedie",
            "tweedie_variance_power": 1.2,
            # 150 trees at 0.1 score as 300 at 0.05 did (daily MASE 0.824 vs 0.823 on 2,000
            # simulated products) in half the time: the fit is nearly all of the forecast's cost.
            "n_estimators": 150,
            "learning_rate": 0.1,
            "num_leaves": 15,
            "min_child_samples": 10,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
        }
    )
    threads: int = 2
    calibration_series: int = 2_000
    min_calibration_errors: int = 500
    calibration_windows: int = 4
    seed: int = 0

    def _model(self):
        # Imported here: mlforecast and LightGBM take a second to import, and most of the graph never needs them.
        import lightgbm as lgb
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean

        regressor = lgb.LGBMRegressor(
            **self.params, n_jobs=self.threads, random_state=self.seed, verbosity=-1
        )
        return MLForecast(
            models={self.name: regressor},
            freq=self.calendar.freq,
            lags=list(self.calendar.lags),
            lag_transforms={
                lag: [RollingMean(window_size=w) for w in windows]
                for lag, windows in self.calendar.rolling_means.items()
            },
            date_features=list(self.calendar.date_features),
            num_threads=self.threads,
        )

    def _fit_predict(self, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        """Point forecasts in the original units: the model sees each series over its level."""
        level = history.groupby("unique_id", sort=False)["y"].mean()
        level = level.where(level > 0, 1.0).rename("level")
        scaled = history.join(level, on="unique_id")
        scaled["y"] = scaled["y"] / scaled["level"]
        # dropna=False: LightGBM takes missing lags as missing, so short and new series train too.
        model = self._model().fit(scaled[["unique_id", "ds", "y"]], static_features=[], dropna=False)
        out = model.predict(horizon).join(level, on="unique_id")
        out["forecast"] = (out[self.name] * out["level"]).clip(lower=0.0)
        return out[["unique_id", "ds", "forecast"]]

    def calibration_errors(self, history: pd.DataFrame, horizon: int) -> np.ndarray:
        """Out-of-sample errors over the last windows of ``horizon`` periods, each divided by its
        series' noise scale: as many windows as give ``calibration_errors`` errors (at most
        ``calibration_windows``), so that a small panel still has a stable 95 % quantile."""
        ids = history["unique_id"].unique()
        if len(ids) > self.calibration_series:
            rng = np.random.default_rng(self.seed)
            ids = rng.choice(ids, self.calibration_series, replace=False)
            history = history[history["unique_id"].isin(ids)]
        dates = np.sort(history["ds"].unique())
        wanted = -(-self.min_calibration_errors // (len(ids) * horizon))
        room = (len(dates) - 2 * self.calendar.season_length) // horizon  # keep two seasons to train on
        windows = max(1, min(self.calibration_windows, wanted, room))
        errors = []
        for k in range(1, windows + 1):
            cutoff, end = dates[-1 - k * horizon], dates[-1 - (k - 1) * horizon]
            past = history[history["ds"] <= cutoff]
            held_out = history[(history["ds"] > cutoff) & (history["ds"] <= end)]
            predicted = self._fit_predict(past, horizon).merge(held_out, on=["unique_id", "ds"])
            predicted = predicted.join(noise_scale(past), on="unique_id")
            errors.append(((predicted["y"] - predicted["forecast"]) / predicted["scale"]).to_numpy())
        return np.concatenate(errors)

    def forecast(self, history: pd.DataFrame, horizon: int, levels: tuple[int, ...] = LEVELS) -> pd.DataFrame:
        errors = self.calibration_errors(history, horizon)
        out = self._fit_predict(history, horizon).join(noise_scale(history), on="unique_id")
        for lv in levels:
            low, high = np.quantile(errors, [(1 - lv / 100) / 2, (1 + lv / 100) / 2])
            out[f"lo_{lv}"] = out["forecast"] + low * out["scale"]
            out[f"hi_{lv}"] = out["forecast"] + high * out["scale"]
        return _clip(out.drop(columns="scale"))


def noise_scale(history: pd.DataFrame) -> pd.Series:
    """Each series' mean absolute one-step change (its mean level where that is zero, else 1)."""
    ordered = history.sort_values(["unique_id", "ds"])
    change = ordered.groupby("unique_id", sort=False)["y"].diff().abs()
    scale = change.groupby(ordered["unique_id"], sort=False).mean()
    level = ordered.groupby("unique_id", sort=False)["y"].mean()
    scale = scale.where(scale > 0, level)
    return scale.where(scale > 0, 1.0).rename("scale")


@dataclass(frozen=True)
class StatsForecaster:
    """A statsforecast model, with its own (model-based) intervals."""

    name: str
    make_model: Callable[[int], object]
    calendar: Calendar = DAILY

    def forecast(self, history: pd.DataFrame, horizon: int, levels: tuple[int, ...] = LEVELS) -> pd.DataFrame:
        from statsforecast import StatsForecast

        model = self.make_model(self.calendar.season_length)
        sf = StatsForecast(models=[model], freq=self.calendar.freq, n_jobs=1)
        out = sf.forecast(df=history[["unique_id", "ds", "y"]], h=horizon, level=list(levels))
        alias = str(model)
        renamed = {alias: "forecast"}
        for lv in levels:
            renamed |= {f"{alias}-lo-{lv}": f"lo_{lv}", f"{alias}-hi-{lv}": f"hi_{lv}"}
        return _clip(
            out.rename(columns=renamed)[["unique_id", "ds", *renamed.values()]].reset_index(drop=True)
        )


def seasonal_naive(calendar: Calendar = DAILY) -> StatsForecaster:
    from statsforecast.models import SeasonalNaive

    return StatsForecaster("seasonal_naive", lambda m: SeasonalNaive(season_length=m), calendar)


def auto_ets(calendar: Calendar = DAILY) -> StatsForecaster:
    from statsforecast.models import AutoETS

    return StatsForecaster("auto_ets", lambda m: AutoETS(season_length=m), calendar)


def candidates(
    calendar: Calendar = DAILY, threads: int = 2, lightgbm: Mapping[str, object] | None = None
) -> list[Forecaster]:
    """The forecasters a backtest chooses among; ``lightgbm`` overrides the LightGBM model's parameters."""
    model = LightGBMForecaster(calendar=calendar, threads=threads)
    return [
        replace(model, params={**model.params, **(lightgbm or {})}),
        seasonal_naive(calendar),
        auto_ets(calendar),
    ]
