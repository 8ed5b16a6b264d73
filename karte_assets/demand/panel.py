"""From warehouse rows to forecaster input, and from forecasts and stock to overstock candidates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd


def dense_panel(sales: pd.DataFrame, last_day: dt.date) -> pd.DataFrame:
    """``sales`` (product_id, sale_date, quantity; days without a sale absent) as one row per
    product and day from the first sale of any product to ``last_day``, zeros where nothing sold."""
    if sales.empty:
        return pd.DataFrame(
            {"unique_id": pd.Series(dtype=str), "ds": pd.Series(dtype="datetime64[ns]"), "y": []}
        )
    days = pd.date_range(pd.Timestamp(sales["sale_date"].min()), pd.Timestamp(last_day), freq="D")
    products = np.sort(sales["product_id"].unique())
    grid = pd.MultiIndex.from_product([products, days], names=["unique_id", "ds"])
    observed = (
        sales.assign(ds=pd.to_datetime(sales["sale_date"])).groupby(["product_id", "ds"])["quantity"].sum()
    )
    observed.index.names = ["unique_id", "ds"]
    return observed.reindex(grid, fill_value=0.0).astype(float).rename("y").reset_index()


def synthetic_inventory(history: pd.DataFrame, day: dt.date, seed: int) -> pd.DataFrame:
    """The synthetic shop's stock on ``day``: each product's units of the last 28 days times a
    log-normal factor (median 1.3), so that some products hold far more than they will sell."""
    recent = history[history["ds"] > pd.Timestamp(day) - pd.Timedelta(days=28)]
    sold = recent.groupby("unique_id")["y"].sum()
    rng = np.random.default_rng([seed, day.toordinal()])
    stock = np.round(sold.to_numpy() * rng.lognormal(np.log(1.3), 0.6, len(sold)))
    return pd.DataFrame({"product_id": sold.index, "stock_on_hand": stock, "as_of_date": day})


INVENTORY_COLUMNS = ("product_id", "stock_on_hand", "as_of_date")


def latest_stock(inventory: pd.DataFrame, day: dt.date, source: str) -> pd.DataFrame:
    """Each product's newest stock on or before ``day``; a malformed inventory is an error naming ``source``."""
    missing = [c for c in INVENTORY_COLUMNS if c not in inventory.columns]
    if missing:
        raise ValueError(f"inventory {source}: lacks the columns {missing}; it has {list(inventory.columns)}")
    frame = inventory[list(INVENTORY_COLUMNS)].copy()
    frame["product_id"] = frame["product_id"].astype(str)
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"], errors="coerce").dt.date
    frame["stock_on_hand"] = pd.to_numeric(frame["stock_on_hand"], errors="coerce")
    bad = frame[frame["as_of_date"].isna() | frame["stock_on_hand"].isna() | (frame["stock_on_hand"] < 0)]
    if not bad.empty:
        raise ValueError(
            f"inventory {source}: {len(bad)} rows without a date, or a non-negative stock, e.g. "
            f"{inventory.loc[bad.index[0], list(INVENTORY_COLUMNS)].to_dict()}"
        )
    frame = frame[frame["as_of_date"] <= day].sort_values("as_of_date")
    return frame.groupby("product_id", as_index=False).last()


def overstock(stock: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Products whose stock exceeds their 95 % upper demand over the horizon, the largest excess first.

    ``stock``: product_id, stock_on_hand, as_of_date; ``totals``: product_id, demand_forecast,
    demand_hi_95, model_version. A product without a forecast is not judged.
    """
    joined = stock.merge(totals, on="product_id")
    joined["excess"] = joined["stock_on_hand"] - joined["demand_hi_95"]
    over = joined[joined["excess"] > 0].sort_values(["excess", "product_id"], ascending=[False, True])
    over = over.rename(columns={"as_of_date": "stock_as_of"}).reset_index(drop=True)
    over["excess_rank"] = np.arange(1, len(over) + 1, dtype=np.int64)
    return over
