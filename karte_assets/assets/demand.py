"""The demand use case: daily units per product, the forecaster a backtest chooses, its forecast
for the next days with 80 % and 95 % intervals, and the products likely to be left over.

A run covers the demand clients of its ``karte/client`` tag, or all of them (``demand_clients``,
registered by the ``karte_assets.DemandForecast`` instances), each with its own parameters and its
own forecaster; ``client_id`` is in every table (CLIENTS.md). The purchases are the loyalty graph's
``raw_events`` of the same client.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
)
from pydantic import Field

from karte_assets.assets.common import daily_asset, for_each_day, markdown_table, rows_metadata
from karte_assets.clients import ClientRegistry, UseCaseClient, checked_column, grouped, run_clients
from karte_assets.demand.backtest import backtest
from karte_assets.demand.forecasters import DAILY, LEVELS, candidates
from karte_assets.demand.panel import dense_panel, latest_stock, overstock, synthetic_inventory
from karte_assets.resources.warehouse import Warehouse

GROUP = "demand"
# daily_demand's quantity path when there is no quantity column: never a number, so unused.
NO_QUANTITY = "$"
# Days of sales behind the synthetic shop's stock (panel.synthetic_inventory).
STOCK_DAYS = 28
MODEL_COLUMNS = ["client_id", "model", "chosen", "mase", "wrmsse", "coverage_80", "coverage_95"]


class DailyDemandConfig(Config):
    product_column: str = Field(
        default="product_id", description="The purchase events' extra column that names the product."
    )
    quantity_column: str | None = Field(
        default=None, description="The extra column with the units bought; unset: each purchase counts 1."
    )


class ForecastConfig(Config):
    horizon_days: int = Field(default=28, ge=1, le=366, description="Days forecast after each day.")
    history_days: int = Field(default=365, ge=28, description="Days of sales the forecasters learn from.")
    lightgbm: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of the LightGBM forecaster over its defaults (n_estimators, num_leaves, ...).",
    )


class DemandModelConfig(ForecastConfig):
    backtest_windows: int = Field(default=2, ge=1, description="Rolling origins of the backtest.")
    reselect_every_days: int = Field(
        default=7, ge=1, description="Days a choice stands before the backtest runs again."
    )


class OverstockConfig(Config):
    inventory_source: str = Field(
        default="synthetic",
        description='A CSV or Parquet file (product_id, stock_on_hand, as_of_date), or "synthetic" for '
        "the simulated shop's stock.",
    )
    inventory_seed: int = Field(default=7, description="Synthetic stock only: the random seed.")


def json_path(column: str, client_id: str, setting: str) -> str:
    try:
        return f"$.{checked_column(column, f'daily_demand client {client_id}: {setting}')}"
    except ValueError as error:
        raise Failure(str(error)) from error


def load_histories(
    warehouse: Warehouse, clients: Sequence[UseCaseClient], day: dt.date, days: Callable[[str], int]
) -> dict[str, pd.DataFrame]:
    """Each client's dense daily panel of its last ``days(client_id)`` days up to ``day``: one query
    per distinct window."""
    panels = {}
    for window, ids in grouped(clients, lambda c: days(c.client_id)).items():
        sales = warehouse.query(
            "demand_history",
            {"client_ids": ids, "partition_date": day, "history_start": day - dt.timedelta(window - 1)},
        )
        for client_id in ids:
            panels[client_id] = dense_panel(sales[sales["client_id"] == client_id], day)
    return panels


def needed_days(config: DemandModelConfig) -> int:
    """History the backtest needs: its windows, one for interval calibration, and two weeks to learn from."""
    return (config.backtest_windows + 1) * config.horizon_days + 2 * DAILY.season_length


def per_client(frame: pd.DataFrame, empty: str) -> MetadataValue:
    return MetadataValue.md(markdown_table(frame) if len(frame) else empty)


@daily_asset(group_name=GROUP, deps=[AssetKey("raw_events")], kinds={"duckdb"})
def daily_demand(
    context: AssetExecutionContext,
    config: DailyDemandConfig,
    warehouse: Warehouse,
    demand_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Units sold per product and day, from the product (and quantity) columns of the purchase events."""
    clients = run_clients(context, demand_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    paths = {
        client_id: (
            json_path(own.product_column, client_id, "product_column"),
            json_path(own.quantity_column, client_id, "quantity_column")
            if own.quantity_column
            else NO_QUANTITY,
        )
        for client_id, own in configs.items()
    }
    # Clients whose purchases carry the same columns share one statement.
    shapes = grouped(clients, lambda c: paths[c.client_id])
    warehouse.ensure_table("daily_demand_table")
    quality: list[pd.DataFrame] = []

    def write(day: dt.date) -> int:
        statements = [
            {"client_ids": ids, "partition_date": day, "product_path": product, "quantity_path": quantity}
            for (product, quantity), ids in shapes.items()
        ]
        counts = pd.concat([warehouse.query("daily_demand_quality", params) for params in statements])
        # Every client's columns are checked before any client's day is replaced.
        for row in counts.itertuples():
            own = configs[row.client_id]
            if row.purchases and row.without_product == row.purchases:
                raise Failure(
                    f"daily_demand {day} client {row.client_id}: none of the {row.purchases} purchases has a "
                    f"{own.product_column!r} column (raw_events.properties); set product_column (the "
                    "client's defs.yaml, or the daily_demand config) to the column that names the product"
                )
            if row.purchases and own.quantity_column and row.without_quantity == row.purchases:
                raise Failure(
                    f"daily_demand {day} client {row.client_id}: none of the {row.purchases} purchases has "
                    f"a numeric {own.quantity_column!r} column; set quantity_column, or unset it to count "
                    "each purchase once"
                )
        quality.append(counts)
        return sum(warehouse.replace_partition("daily_demand", day, "daily_demand", p) for p in statements)

    rows = for_each_day(context, warehouse, write)
    totals = pd.concat(quality).groupby("client_id", as_index=False).sum(numeric_only=True)
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "clients": MetadataValue.int(len(clients)),
            "per_client": per_client(totals, "no purchases in these days"),
        }
    )


def _no_models() -> pd.DataFrame:
    return pd.DataFrame(columns=[*MODEL_COLUMNS, "backtest_date", "reason"])


@daily_asset(group_name=GROUP, deps=[daily_demand], kinds={"python", "lightgbm"})
def demand_model(
    context: AssetExecutionContext,
    config: DemandModelConfig,
    warehouse: Warehouse,
    demand_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Each client's forecaster: the one of a global LightGBM model, seasonal naive and AutoETS
    with the lowest MASE in a rolling-origin backtest on the client's own history."""
    clients = run_clients(context, demand_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    cadences = grouped(clients, lambda c: configs[c.client_id].reselect_every_days)
    warehouse.ensure_table("demand_model_table")
    chosen: dict[dt.date, pd.DataFrame] = {}

    def write(day: dt.date) -> int:
        standing = pd.concat(
            [
                warehouse.query(
                    "demand_model_choice", {"client_ids": ids, "partition_date": day, "days": days}
                )
                for days, ids in cadences.items()
            ]
        )
        # A client's last backtest stands: carry its rows to this day.
        frames = [
            warehouse.query(
                "demand_model_rows",
                {"client_ids": list(group["client_id"]), "partition_date": pd.Timestamp(earlier).date()},
            )
            for earlier, group in standing.groupby("partition_date")
        ]
        due = [client for client in clients if client.client_id not in set(standing["client_id"])]
        histories = load_histories(warehouse, due, day, lambda c: configs[c].history_days)
        for client_id, history in histories.items():
            own, days = configs[client_id], history["ds"].nunique()
            if days < needed_days(own):
                context.log.info(
                    f"demand_model {day} client {client_id}: {days} days of sales, the backtest needs "
                    f"{needed_days(own)}: no forecaster yet"
                )
                continue
            result = backtest(
                history,
                candidates(DAILY, lightgbm=own.lightgbm),
                own.horizon_days,
                own.backtest_windows,
                DAILY.season_length,
            )
            frames.append(
                result.summary.assign(
                    client_id=client_id,
                    chosen=result.summary["model"] == result.winner,
                    backtest_date=day,
                    reason=result.reason,
                )
            )
            context.log.info(f"demand_model {day} client {client_id}: {result.reason}")
        frames = [frame for frame in frames if len(frame)]
        rows = pd.concat(frames, ignore_index=True) if frames else _no_models()
        chosen[day] = rows
        return warehouse.replace_partition_with_rows("demand_model", day, rows, clients=list(configs))

    counts = for_each_day(context, warehouse, write)
    last = chosen[max(chosen)]
    winners = last[last["chosen"].astype(bool)]
    return MaterializeResult(
        metadata={
            **rows_metadata(counts),
            "clients": MetadataValue.int(len(clients)),
            "per_client": per_client(winners[[*MODEL_COLUMNS, "backtest_date"]], "no forecaster yet"),
            "reasons": MetadataValue.md(
                "\n".join(f"- {row.client_id}: {row.reason}" for row in winners.itertuples()) or "none"
            ),
            "backtest": per_client(last[MODEL_COLUMNS], "no backtest yet"),
        }
    )


@daily_asset(group_name=GROUP, deps=[demand_model, daily_demand], kinds={"python", "lightgbm"})
def demand_forecast(
    context: AssetExecutionContext,
    config: ForecastConfig,
    warehouse: Warehouse,
    demand_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Each product's forecast for each of the next days, with 80 % and 95 % intervals, by its client's chosen forecaster."""
    clients = run_clients(context, demand_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    warehouse.ensure_table("demand_forecast_table")
    versions: dict[str, tuple[dt.date, str]] = {}

    def write(day: dt.date) -> int:
        models = warehouse.query("demand_model_rows", {"client_ids": list(configs), "partition_date": day})
        winners = models[models["chosen"].fillna(False).astype(bool)].set_index("client_id")
        ready = [client for client in clients if client.client_id in winners.index]
        for client_id in configs.keys() - set(winners.index):
            context.log.info(f"demand_forecast {day} client {client_id}: demand_model chose no forecaster")
        histories = load_histories(warehouse, ready, day, lambda c: configs[c].history_days)
        frames = []
        for client_id, history in histories.items():
            own, winner = configs[client_id], winners.loc[client_id]
            version = f"{winner['model']}@{pd.Timestamp(winner['backtest_date']):%Y-%m-%d}"
            versions[client_id] = (day, version)
            forecaster = {f.name: f for f in candidates(DAILY, lightgbm=own.lightgbm)}[winner["model"]]
            predicted = forecaster.forecast(history, own.horizon_days, LEVELS)
            frames.append(_forecast_rows(client_id, predicted, version))
        rows = pd.concat(frames, ignore_index=True) if frames else _forecast_rows("", None, "")
        return warehouse.replace_partition_with_rows("demand_forecast", day, rows, clients=list(configs))

    rows = for_each_day(context, warehouse, write)
    newest = pd.DataFrame(
        [
            {"client_id": client_id, "model_version": version, "forecast_day": str(day)}
            for client_id, (day, version) in sorted(versions.items())
        ]
    )
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "clients": MetadataValue.int(len(clients)),
            "per_client": per_client(newest, "no forecaster yet"),
        }
    )


def _forecast_rows(client_id: str, predicted: pd.DataFrame | None, version: str) -> pd.DataFrame:
    bounds = [f"{b}_{lv}" for lv in LEVELS for b in ("lo", "hi")]
    if predicted is None:
        predicted = pd.DataFrame(columns=["unique_id", "ds", "forecast", *bounds])
    return pd.DataFrame(
        {
            "client_id": client_id,
            "product_id": predicted["unique_id"].astype(str),
            "forecast_date": pd.to_datetime(predicted["ds"]).dt.date,
            **{c: predicted[c].astype(float) for c in ["forecast", *bounds]},
            "model_version": version,
        }
    )


def read_inventory(source: str, client_id: str) -> pd.DataFrame:
    path = Path(source)
    where = f"overstock_candidates client {client_id}: inventory_source {source!r}"
    if not path.is_file():
        raise Failure(f"{where}: no such file")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise Failure(f"{where}: not a .csv or .parquet file")


@daily_asset(group_name=GROUP, deps=[demand_forecast], kinds={"python"})
def overstock_candidates(
    context: AssetExecutionContext,
    config: OverstockConfig,
    warehouse: Warehouse,
    demand_clients: ResourceParam[ClientRegistry],
) -> MaterializeResult:
    """Products whose stock on hand exceeds the 95 % upper bound of their demand over the horizon, the
    largest excess first: the products to move with coupons."""
    clients = run_clients(context, demand_clients)
    configs = {client.client_id: client.config(config) for client in clients}
    inventories = {
        client_id: None
        if own.inventory_source == "synthetic"
        else read_inventory(own.inventory_source, client_id)
        for client_id, own in configs.items()
    }
    synthetic = [client for client in clients if inventories[client.client_id] is None]
    warehouse.ensure_table("overstock_candidates_table")
    tops: dict[dt.date, pd.DataFrame] = {}
    summaries: dict[dt.date, pd.DataFrame] = {}

    def write(day: dt.date) -> int:
        totals = warehouse.query(
            "demand_forecast_totals", {"client_ids": list(configs), "partition_date": day}
        )
        recent = load_histories(warehouse, synthetic, day, lambda c: STOCK_DAYS)
        frames = []
        for client_id, own in configs.items():
            if client_id in recent:
                stock = synthetic_inventory(recent[client_id], day, own.inventory_seed)
            else:
                try:
                    stock = latest_stock(inventories[client_id], day, own.inventory_source)
                except ValueError as error:
                    raise Failure(f"overstock_candidates client {client_id}: {error}") from error
            forecast = totals[totals["client_id"] == client_id].drop(columns="client_id")
            frames.append(overstock(stock, forecast).assign(client_id=client_id))
        rows = pd.concat(frames, ignore_index=True)[
            ["client_id", "product_id", "stock_on_hand", "stock_as_of", "demand_forecast", "demand_hi_95"]
            + ["excess", "excess_rank", "model_version"]
        ]
        tops[day] = rows[rows["excess_rank"] <= 10]
        summaries[day] = (
            rows.groupby("client_id")
            .agg(candidates=("product_id", "size"), excess=("excess", "sum"))
            .reindex(list(configs), fill_value=0)
            .rename_axis("client_id")
            .reset_index()
        )
        return warehouse.replace_partition_with_rows("overstock_candidates", day, rows, clients=list(configs))

    rows = for_each_day(context, warehouse, write)
    top = tops[max(tops)]
    return MaterializeResult(
        metadata={
            **rows_metadata(rows),
            "clients": MetadataValue.int(len(clients)),
            "per_client": per_client(summaries[max(summaries)], "no clients"),
            "top_excess": MetadataValue.md(markdown_table(top, "{:.1f}")) if not top.empty else "none",
        }
    )


DEMAND_ASSETS = [daily_demand, demand_model, demand_forecast, overstock_candidates]
