"""The demand use case: daily units per product, the forecaster a backtest chooses, its forecast
for the next days with 80 % and 95 % intervals, and the products likely to be left over.

One client per run today (``client_id``, ``default``); the DemandForecast component (CLIENTS.md)
will set it, with the other parameters, from each client's defs.yaml.
"""

import datetime as dt
import re
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Config, Failure, MaterializeResult, MetadataValue
from pydantic import Field

from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.demand.backtest import backtest
from karte_assets.demand.forecasters import DAILY, LEVELS, candidates
from karte_assets.demand.panel import dense_panel, latest_stock, overstock, synthetic_inventory
from karte_assets.resources.warehouse import Warehouse

GROUP = "demand"
CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# daily_demand's quantity path when there is no quantity column: never a number, so unused.
NO_QUANTITY = "$"


class ClientConfig(Config):
    client_id: str = Field(
        default="default", pattern=CLIENT_ID_PATTERN, description="The client shop (CLIENTS.md)."
    )


class DailyDemandConfig(ClientConfig):
    product_column: str = Field(
        default="product_id", description="The purchase events' extra column that names the product."
    )
    quantity_column: str | None = Field(
        default=None, description="The extra column with the units bought; unset: each purchase counts 1."
    )


class ForecastConfig(ClientConfig):
    horizon_days: int = Field(default=28, ge=1, le=366, description="Days forecast after each day.")
    history_days: int = Field(default=365, ge=28, description="Days of sales the forecasters learn from.")


class DemandModelConfig(ForecastConfig):
    backtest_windows: int = Field(default=2, ge=1, description="Rolling origins of the backtest.")
    reselect_every_days: int = Field(
        default=7, ge=1, description="Days a choice stands before the backtest runs again."
    )


class OverstockConfig(ForecastConfig):
    inventory_source: str = Field(
        default="synthetic",
        description='A CSV or Parquet file (product_id, stock_on_hand, as_of_date), or "synthetic" for '
        "the simulated shop's stock.",
    )
    synthetic_seed: int = Field(default=7, description="Synthetic stock only: the random seed.")


def json_path(column: str, setting: str) -> str:
    if not _COLUMN.match(column):
        raise Failure(f"daily_demand.{setting} {column!r} is not a column name (letters, digits, _)")
    return f"$.{column}"


def load_history(warehouse: Warehouse, client_id: str, day: dt.date, history_days: int) -> pd.DataFrame:
    """The client's dense daily panel of the ``history_days`` days up to ``day``."""
    sales = warehouse.query(
        "demand_history",
        {
            "client_id": client_id,
            "partition_date": day,
            "history_start": day - dt.timedelta(history_days - 1),
        },
    )
    return dense_panel(sales, day)


def needed_days(config: ForecastConfig, windows: int) -> int:
    """History the backtest needs: its windows, one for interval calibration, and two weeks to learn from."""
    return (windows + 1) * config.horizon_days + 2 * DAILY.season_length


@daily_asset(group_name=GROUP, deps=[AssetKey("raw_events")], kinds={"duckdb"})
def daily_demand(
    context: AssetExecutionContext, config: DailyDemandConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Units sold per product and day, from the product (and quantity) columns of the purchase events."""
    params = {
        "client_id": config.client_id,
        "product_path": json_path(config.product_column, "product_column"),
        "quantity_path": json_path(config.quantity_column, "quantity_column")
        if config.quantity_column
        else NO_QUANTITY,
    }
    warehouse.ensure_table("daily_demand_table")
    left_out: dict[dt.date, tuple[int, int, int]] = {}

    def write(day: dt.date) -> int:
        quality = warehouse.query("daily_demand_quality", {**params, "partition_date": day}).iloc[0]
        purchases, no_product, no_quantity = (
            int(quality[c]) for c in ("purchases", "without_product", "without_quantity")
        )
        if purchases and no_product == purchases:
            raise Failure(
                f"daily_demand {day}: none of the {purchases} purchases has a {config.product_column!r} column "
                "(raw_events.properties); set daily_demand.product_column to the column that names the product"
            )
        if purchases and config.quantity_column and no_quantity == purchases:
            raise Failure(
                f"daily_demand {day}: none of the {purchases} purchases has a numeric {config.quantity_column!r} "
                "column; set daily_demand.quantity_column, or unset it to count each purchase once"
            )
        left_out[day] = (purchases, no_product, no_quantity)
        return warehouse.replace_partition("daily_demand", day, "daily_demand", params)

    rows = for_each_day(context, warehouse, write)
    purchases, no_product, no_quantity = (sum(v[i] for v in left_out.values()) for i in range(3))
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "client_id": config.client_id,
            "purchases": purchases,
            "purchases_without_product": no_product,
            "purchases_without_quantity": no_quantity,
        }
    )


@daily_asset(group_name=GROUP, deps=[daily_demand], kinds={"python", "lightgbm"})
def demand_model(
    context: AssetExecutionContext, config: DemandModelConfig, warehouse: Warehouse
) -> MaterializeResult:
    """The forecaster for the client: the one of a global LightGBM model, seasonal naive and AutoETS
    with the lowest MASE in a rolling-origin backtest on the client's own history."""
    warehouse.ensure_table("demand_model_table")
    chosen: dict[dt.date, pd.DataFrame] = {}

    def write(day: dt.date) -> int:
        client = {"client_id": config.client_id, "partition_date": day}
        earlier = warehouse.query("demand_model_choice", {**client, "days": config.reselect_every_days})
        if not earlier.empty:  # the last backtest stands: carry its rows to this day
            rows = warehouse.query(
                "demand_model_rows",
                {**client, "partition_date": pd.Timestamp(earlier["partition_date"].iloc[0]).date()},
            )
        else:
            history = load_history(warehouse, config.client_id, day, config.history_days)
            days = history["ds"].nunique()
            if days < needed_days(config, config.backtest_windows):
                context.log.info(
                    f"demand_model {day}: {days} days of sales, the backtest needs "
                    f"{needed_days(config, config.backtest_windows)}: no forecaster yet"
                )
                rows = pd.DataFrame(columns=["client_id", "model", "chosen", "backtest_date", "reason"])
            else:
                result = backtest(
                    history,
                    candidates(DAILY),
                    config.horizon_days,
                    config.backtest_windows,
                    DAILY.season_length,
                )
                rows = result.summary.assign(
                    client_id=config.client_id,
                    chosen=result.summary["model"] == result.winner,
                    backtest_date=day,
                    reason=result.reason,
                )
                context.log.info(f"demand_model {day}: {result.reason}")
        chosen[day] = rows
        return warehouse.replace_partition_with_rows("demand_model", day, rows)

    counts = for_each_day(context, warehouse, write)
    last = chosen[max(chosen)]
    metadata: dict[str, object] = {**rows_metadata(counts), "client_id": config.client_id}
    if not last.empty:
        winner = last[last["chosen"]].iloc[0]
        metadata |= {
            "model": winner["model"],
            "reason": MetadataValue.md(str(winner["reason"])),
            "backtest": MetadataValue.md(
                markdown_table(
                    last[["client_id", "model", "chosen", "mase", "wrmsse", "coverage_80", "coverage_95"]]
                )
            ),
        }
    return MaterializeResult(metadata=metadata)


@daily_asset(group_name=GROUP, deps=[demand_model, daily_demand], kinds={"python", "lightgbm"})
def demand_forecast(
    context: AssetExecutionContext, config: ForecastConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Each product's forecast for each of the next days, with 80 % and 95 % intervals, by the chosen forecaster."""
    warehouse.ensure_table("demand_forecast_table")
    forecasters = {f.name: f for f in candidates(DAILY)}
    versions: dict[dt.date, str] = {}

    def write(day: dt.date) -> int:
        models = warehouse.query("demand_model_rows", {"client_id": config.client_id, "partition_date": day})
        winner = models[models["chosen"].fillna(False).astype(bool)]
        if winner.empty:
            context.log.info(f"demand_forecast {day}: demand_model chose no forecaster for this day")
            return warehouse.replace_partition_with_rows(
                "demand_forecast", day, _forecast_rows(None, "", config)
            )
        name, chosen_on = winner["model"].iloc[0], winner["backtest_date"].iloc[0]
        history = load_history(warehouse, config.client_id, day, config.history_days)
        versions[day] = f"{name}@{pd.Timestamp(chosen_on):%Y-%m-%d}"
        predicted = forecasters[name].forecast(history, config.horizon_days, LEVELS)
        return warehouse.replace_partition_with_rows(
            "demand_forecast", day, _forecast_rows(predicted, versions[day], config)
        )

    rows = for_each_day(context, warehouse, write)
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "client_id": config.client_id,
            "model_version": versions.get(max(rows), "none"),
        }
    )


def _forecast_rows(predicted: pd.DataFrame | None, version: str, config: ForecastConfig) -> pd.DataFrame:
    bounds = [f"{b}_{lv}" for lv in LEVELS for b in ("lo", "hi")]
    if predicted is None:
        predicted = pd.DataFrame(columns=["unique_id", "ds", "forecast", *bounds])
    return pd.DataFrame(
        {
            "client_id": config.client_id,
            "product_id": predicted["unique_id"].astype(str),
            "forecast_date": pd.to_datetime(predicted["ds"]).dt.date,
            **{c: predicted[c].astype(float) for c in ["forecast", *bounds]},
            "model_version": version,
        }
    )


def read_inventory(source: str) -> pd.DataFrame:
    path = Path(source)
    if not path.is_file():
        raise Failure(f"overstock_candidates.inventory_source {source!r}: no such file")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise Failure(f"overstock_candidates.inventory_source {source!r}: not a .csv or .parquet file")


@daily_asset(group_name=GROUP, deps=[demand_forecast], kinds={"python"})
def overstock_candidates(
    context: AssetExecutionContext, config: OverstockConfig, warehouse: Warehouse
) -> MaterializeResult:
    """Products whose stock on hand exceeds the 95 % upper bound of their demand over the horizon, the
    largest excess first: the products to move with coupons."""
    warehouse.ensure_table("overstock_candidates_table")
    inventory = None if config.inventory_source == "synthetic" else read_inventory(config.inventory_source)
    tops: dict[dt.date, pd.DataFrame] = {}

    def write(day: dt.date) -> int:
        client = {"client_id": config.client_id, "partition_date": day}
        if inventory is None:
            stock = synthetic_inventory(
                load_history(warehouse, config.client_id, day, 28), day, config.synthetic_seed
            )
        else:
            try:
                stock = latest_stock(inventory, day, config.inventory_source)
            except ValueError as error:
                raise Failure(str(error)) from error
        ranked = overstock(stock, warehouse.query("demand_forecast_totals", client))
        rows = ranked.assign(client_id=config.client_id)[
            ["client_id", "product_id", "stock_on_hand", "stock_as_of", "demand_forecast", "demand_hi_95"]
            + ["excess", "excess_rank", "model_version"]
        ]
        tops[day] = rows.head(10)
        return warehouse.replace_partition_with_rows("overstock_candidates", day, rows)

    rows = for_each_day(context, warehouse, write)
    top = tops[max(tops)]
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "client_id": config.client_id,
            "top_excess": MetadataValue.md(markdown_table(top, "{:.1f}")) if not top.empty else "none",
        }
    )


DEMAND_ASSETS = [daily_demand, demand_model, demand_forecast, overstock_candidates]
