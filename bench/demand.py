"""The demand forecaster at catalogue scale: N products x D days of daily sales, forecast H days ahead.

The sales are simulated here (vectorised, seeded) the way the synthetic shop shapes its products: a
log-normal level (a long tail of intermittent products), a yearly trend, a weekly profile and
promotions, drawn as Poisson counts. As ``demand_forecast`` does, the forecaster gets the last
``history_days`` days of the history (the asset's default, 365 of the 730); the time is the whole
``LightGBMForecaster.forecast`` (its interval calibration fit, the final fit and the recursive 28-day
forecast), in this process with ``threads`` LightGBM and mlforecast threads; the backtest that
chooses the forecaster is not in it (it runs once a week, ``demand_model.reselect_every_days``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd


def sales(products: int, days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = rng.lognormal(0.0, 1.2, products)[:, None]
    trend = np.exp(rng.normal(0.0, 0.4, products)[:, None] * t / 365)
    weekly = np.exp(rng.uniform(0.0, 0.6, products)[:, None] * np.where(t % 7 >= 5, 1.0, -0.4))
    promo = np.where(rng.random((products, days // 28 + 1)) < 0.2, 3.0, 1.0).repeat(28, axis=1)[:, :days]
    promo = np.where((t % 28 < 5), promo, 1.0)  # promotions run the first 5 days of a 4-week block
    y = rng.poisson(level * trend * weekly * promo).astype(float)
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"p{i:05d}" for i in range(products)], days),
            "ds": np.tile(pd.date_range("2024-01-01", periods=days, freq="D").to_numpy(), products),
            "y": y.ravel(),
        }
    )


def run(products: int, days: int, horizon: int, threads: int, log: Callable[[str], None]) -> dict:
    from karte_assets.assets.demand import ForecastConfig
    from karte_assets.demand.forecasters import LightGBMForecaster

    stored = sales(products, days)
    history_days = min(days, ForecastConfig().history_days)
    history = stored[stored["ds"] > stored["ds"].max() - pd.Timedelta(days=history_days)]
    log(
        f"demand: {products:,} products x {days} days, the last {history_days} learnt from "
        f"({len(history):,} rows); forecasting {horizon} days"
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    forecast = LightGBMForecaster(threads=threads).forecast(history, horizon)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    # On a shared machine the wall time includes waiting for the CPU; the process's CPU time over
    # its threads is what two idle cores would take.
    log(f"demand: {seconds:.1f}s wall, {cpu:.1f}s CPU for {len(forecast):,} forecast rows")
    return {
        "products": products,
        "days": days,
        "history_days": history_days,
        "horizon": horizon,
        "threads": threads,
        "rows": len(history),
        "forecast_rows": len(forecast),
        "forecast_seconds": seconds,
        "cpu_seconds": cpu,
    }
