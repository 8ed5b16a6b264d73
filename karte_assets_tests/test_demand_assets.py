"""The demand assets on the synthetic shop, through the real local warehouse; and their pure parts."""

import datetime as dt
import json
import re

import pandas as pd
import pytest
from dagster import Failure

from karte_assets.demand.panel import dense_panel, latest_stock, overstock
from karte_assets_tests.graph import FIRST_DAY

DEMAND = ["raw_events", "daily_demand", "demand_model", "demand_forecast", "overstock_candidates"]
HORIZON = 7


def test_dense_panel_fills_days_without_a_sale_from_the_first_sale():
    sales = pd.DataFrame(
        {
            "product_id": ["a", "b", "a"],
            "sale_date": [dt.date(2026, 1, 2), dt.date(2026, 1, 3), dt.date(2026, 1, 4)],
            "quantity": [2.0, 1.0, 3.0],
        }
    )
    panel = dense_panel(sales, dt.date(2026, 1, 5))
    assert panel[panel["unique_id"] == "a"]["y"].tolist() == [2.0, 0.0, 3.0, 0.0]
    assert panel[panel["unique_id"] == "b"]["y"].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_latest_stock_takes_the_newest_count_on_or_before_the_day_and_names_bad_rows():
    inventory = pd.DataFrame(
        {
            "product_id": ["a", "a", "a", "b"],
            "stock_on_hand": [5, 7, 9, 1],
            "as_of_date": ["2026-01-01", "2026-01-03", "2026-01-09", "2026-01-02"],
        }
    )
    stock = latest_stock(inventory, dt.date(2026, 1, 5), "stock.csv").set_index("product_id")
    assert stock.loc["a", "stock_on_hand"] == 7 and stock.loc["b", "stock_on_hand"] == 1
    with pytest.raises(ValueError, match=r"inventory stock.csv: lacks the columns \['as_of_date'\]"):
        latest_stock(inventory.drop(columns="as_of_date"), dt.date(2026, 1, 5), "stock.csv")
    with pytest.raises(
        ValueError, match="inventory stock.csv: 1 rows without a date, or a non-negative stock"
    ):
        latest_stock(inventory.assign(stock_on_hand=[5, -1, 9, 1]), dt.date(2026, 1, 5), "stock.csv")


def test_overstock_ranks_by_excess_over_the_95_upper_demand():
    stock = pd.DataFrame(
        {
            "product_id": ["a", "b", "c", "d"],
            "stock_on_hand": [10.0, 50.0, 3.0, 9.0],
            "as_of_date": dt.date(2026, 1, 1),
        }
    )
    totals = pd.DataFrame(
        {
            "product_id": ["a", "b", "c"],
            "demand_forecast": [2.0, 5.0, 2.0],
            "demand_hi_95": [4.0, 20.0, 3.0],
            "model_version": "m",
        }
    )
    ranked = overstock(stock, totals)
    # a: 10 - 4 = 6, b: 50 - 20 = 30, c: 3 - 3 = 0 (not over), d: no forecast (not judged).
    assert ranked[["product_id", "excess", "excess_rank"]].values.tolist() == [["b", 30.0, 1], ["a", 6.0, 2]]


def purchases_of(graph, day: dt.date) -> pd.DataFrame:
    events = graph.table("raw_events", day)
    bought = events[events["event_name"] == "purchase"]
    extra = bought["properties"].map(json.loads)
    return pd.DataFrame(
        {"product_id": extra.map(lambda p: p["product_id"]), "quantity": extra.map(lambda p: p["quantity"])}
    )


@pytest.mark.slow
def test_the_demand_graph_forecasts_and_flags_overstock_on_the_synthetic_shop(graph, tmp_path):
    # 28 days of sales are the first that a backtest of one 7-day window can use; two days after are carried.
    last = FIRST_DAY + dt.timedelta(days=29)
    inventory = tmp_path / "stock.csv"
    window = {"horizon_days": HORIZON, "history_days": 60}
    config = {
        "ops": {
            "raw_events": {"config": {"synthetic_new_users_per_day": 40.0}},
            "daily_demand": {"config": {"quantity_column": "quantity"}},
            "demand_model": {"config": {**window, "backtest_windows": 1}},
            "demand_forecast": {"config": window},
            "overstock_candidates": {"config": {"inventory_source": str(inventory)}},
        }
    }
    assert graph.materialize(FIRST_DAY, last, run_config=config, selection=DEMAND[:-1]).success

    # daily_demand: the units of the day's purchases, per product.
    demand = graph.table("daily_demand", last).set_index("product_id")
    expected = purchases_of(graph, last).groupby("product_id")["quantity"].agg(["sum", "count"])
    assert demand["quantity"].to_dict() == expected["sum"].astype(float).to_dict()
    assert demand["purchases"].to_dict() == expected["count"].to_dict()
    assert (demand["client_id"] == "default").all()

    # demand_model: nothing before the backtest has enough history, one backtest on day 28, then carried.
    models = graph.table("demand_model")
    assert models["partition_date"].min() == pd.Timestamp(FIRST_DAY + dt.timedelta(days=27))
    chosen = models[models["chosen"]]
    assert len(chosen) == 3 and chosen["model"].nunique() == 1 and chosen["backtest_date"].nunique() == 1
    assert set(models["model"]) == {"lightgbm", "seasonal_naive", "auto_ets"}
    assert chosen["reason"].iloc[0].startswith(f"{chosen['model'].iloc[0]} has the lowest MASE")

    # demand_forecast: every product of the history, each of the next 7 days, ordered bounds.
    forecast = graph.table("demand_forecast", last)
    assert set(forecast["forecast_date"]) == {pd.Timestamp(last + dt.timedelta(days=h)) for h in range(1, 8)}
    assert forecast.groupby("product_id").size().eq(HORIZON).all()
    assert forecast["product_id"].nunique() == graph.table("daily_demand")["product_id"].nunique()
    assert (forecast["lo_95"] >= 0).all()
    assert (forecast["lo_95"] <= forecast["lo_80"]).all() and (forecast["lo_80"] <= forecast["hi_80"]).all()
    assert (forecast["hi_80"] <= forecast["hi_95"]).all()
    assert (forecast["lo_80"] <= forecast["forecast"] + 1e-9).all() and (
        forecast["forecast"] <= forecast["hi_80"]
    ).all()
    assert re.fullmatch(rf"{chosen['model'].iloc[0]}@2026-06-28", forecast["model_version"].iloc[0])

    # overstock_candidates: the best seller's stock of the day (not the later count) against its 95 %
    # demand; another product holds none.
    top, other = graph.table("daily_demand").groupby("product_id")["quantity"].sum().nlargest(2).index
    pd.DataFrame(
        {
            "product_id": [top, other, top],
            "stock_on_hand": [1_000_000, 0, 5],
            "as_of_date": [last.isoformat(), last.isoformat(), (last + dt.timedelta(days=1)).isoformat()],
        }
    ).to_csv(inventory, index=False)
    assert graph.materialize(last, run_config=config, selection=DEMAND[-1:]).success
    over = graph.table("overstock_candidates", last)
    assert over["product_id"].tolist() == [top]
    top_forecast = forecast[forecast["product_id"] == top]
    assert over["excess"].iloc[0] == pytest.approx(1_000_000 - top_forecast["hi_95"].sum())
    assert over["excess_rank"].iloc[0] == 1 and over["stock_as_of"].iloc[0] == pd.Timestamp(last)


def test_daily_demand_names_the_missing_product_column(graph):
    config = {
        "ops": {
            "raw_events": {"config": {"synthetic_new_users_per_day": 40.0}},
            "daily_demand": {"config": {"product_column": "sku"}},
        }
    }
    with pytest.raises(
        Failure, match=r"daily_demand 2026-06-01 client default: none of the \d+ purchases has a 'sku' column"
    ):
        graph.materialize(FIRST_DAY, run_config=config, selection=["raw_events", "daily_demand"])


def test_overstock_candidates_export_as_files_for_one_client(tmp_path):
    from karte_assets.export import NotScored, export_overstock, write_files
    from karte_assets.resources.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    day = dt.date(2026, 8, 29)
    with pytest.raises(
        NotScored, match="overstock_candidates has no partition 2026-08-29 for client default"
    ):
        export_overstock(warehouse, day, "default")
    warehouse.ensure_table("overstock_candidates_table")
    row = {
        "stock_on_hand": 9.0,
        "stock_as_of": day,
        "demand_forecast": 1.0,
        "demand_hi_95": 2.0,
        "model_version": "m",
    }
    rows = pd.DataFrame(
        [
            {"client_id": "default", "product_id": "b", "excess": 3.0, "excess_rank": 2, **row},
            {"client_id": "default", "product_id": "a", "excess": 7.0, "excess_rank": 1, **row},
            {"client_id": "other", "product_id": "c", "excess": 9.0, "excess_rank": 1, **row},
        ]
    )
    warehouse.replace_partition_with_rows("overstock_candidates", day, rows, clients=("default", "other"))
    exported = export_overstock(warehouse, day, "default")
    assert exported.column("product_id").to_pylist() == ["a", "b"]
    paths = write_files(exported, day, tmp_path / "out", name="overstock_candidates")
    assert [p.name for p in paths] == [
        "overstock_candidates_2026-08-29.parquet",
        "overstock_candidates_2026-08-29.csv",
    ]
    assert pd.read_csv(paths[1])["product_id"].tolist() == ["a", "b"]


def test_a_demand_client_sets_its_knobs_and_a_run_config_overrides_them():
    from karte_assets.assets.demand import (
        DailyDemandConfig,
        DemandModelConfig,
        ForecastConfig,
        OverstockConfig,
    )
    from karte_assets.clients import DEMAND, DemandClient, LoyaltyClient, registries_of
    from karte_assets.components import DemandForecast
    from karte_assets.settings import load_settings

    shop = DemandForecast.resolve_from_yaml(
        "client_id: shop-a\nproduct_column: sku\nhorizon_days: 14\nreselect_every_days: 3\n"
        "lightgbm: {num_leaves: 7}\ninventory_source: /data/stock.csv\ninventory_seed: 3"
    )
    assert shop.build_defs(None).metadata["karte/clients/demand/shop-a"].value == (
        '{"client_id":"shop-a","product_column":"sku","horizon_days":14,"reselect_every_days":3,'
        '"lightgbm":{"num_leaves":7},"inventory_source":"/data/stock.csv","inventory_seed":3}'
    )
    client = DemandClient(**shop.model_dump(exclude_unset=True))
    assert client.config(DailyDemandConfig()).product_column == "sku"
    model = client.config(DemandModelConfig())
    assert (model.horizon_days, model.reselect_every_days, model.history_days) == (14, 3, 365)
    assert client.config(ForecastConfig()).lightgbm == {"num_leaves": 7}
    stock = client.config(OverstockConfig())
    assert (stock.inventory_source, stock.inventory_seed) == ("/data/stock.csv", 3)
    assert client.config(ForecastConfig(horizon_days=5)).horizon_days == 5  # the run's value wins

    # Each use case's registry takes the clients of its own type from a mixed list.
    registries = registries_of(load_settings({}), [client, LoyaltyClient(client_id="shop-b")])
    assert registries[DEMAND].ids() == ["default", "shop-a"]
    assert registries["loyalty"].ids() == ["default", "shop-b"]


def test_daily_demand_runs_each_client_by_its_own_columns(tmp_path):
    from dagster import DagsterInstance, materialize

    from karte_assets.assets.demand import DEMAND_ASSETS
    from karte_assets.clients import DEMAND, DemandClient, default_registry
    from karte_assets.resources.warehouse import DuckDBWarehouse
    from karte_assets.settings import load_settings

    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.ensure_table("raw_events_table")
    at = pd.Timestamp(FIRST_DAY, tz="UTC")

    def purchase(client_id: str, properties: str) -> dict:
        return {"client_id": client_id, "user_id": "u", "event_ts": at, "event_name": "purchase"} | {
            "value": 1.0,
            "properties": properties,
        }

    events = pd.DataFrame(
        [
            purchase("shop-a", '{"sku": "x", "qty": 3}'),
            purchase("shop-a", '{"sku": "x", "qty": 2}'),
            purchase("shop-b", '{"product_id": "x", "qty": 9}'),
            purchase("shop-b", '{"product_id": "y"}'),
        ]
    )
    warehouse.replace_partition_with_rows("raw_events", FIRST_DAY, events, clients=("shop-a", "shop-b"))
    shops = [DemandClient(client_id="shop-a", product_column="sku", quantity_column="qty")]
    shops.append(DemandClient(client_id="shop-b"))
    resources = {"warehouse": warehouse, "demand_clients": default_registry(load_settings({}), shops, DEMAND)}

    assert materialize(
        DEMAND_ASSETS,
        selection=["daily_demand"],
        resources=resources,
        partition_key=FIRST_DAY.isoformat(),
        instance=DagsterInstance.ephemeral(),
    ).success
    with warehouse.connect() as connection:
        rows = connection.execute(
            "SELECT client_id, product_id, quantity, purchases FROM daily_demand ORDER BY ALL"
        )
        # shop-a: units of its qty column per sku; shop-b: one unit per purchase of each product_id.
        assert rows.fetchall() == [("shop-a", "x", 5.0, 2), ("shop-b", "x", 1.0, 1), ("shop-b", "y", 1.0, 1)]
