"""Many clients in one graph: isolation, the run tag, per-client parameters, the component."""

import datetime as dt

import pandas as pd
import pytest
from dagster import Failure

from karte_assets.clients import CLIENT_TAG, LoyaltyClient, default_registry
from karte_assets.components import DemandForecast, LoyaltyScoring
from karte_assets.environments import local_resources
from karte_assets.export import export_audience
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.settings import load_settings
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, config_with

SHOP_A = LoyaltyClient(client_id="shop-a", synthetic_seed=11)
# shop-b features, trains on and scores only the users seen in its last 3 days (an audience rule).
SHOP_B = LoyaltyClient(
    client_id="shop-b", synthetic_seed=12, tier_a_share=0.3, tier_b_share=0.3, audience_days=3
)
# Short horizon and snapshot spacing so that each shop's first model trains on day 7; a week of a
# tiny shop validates near chance, so every model is accepted (this test is about isolation, not quality).
QUICK = config_with(
    loyalty_training_set={"horizon_days": 3, "snapshot_every_days": 3, "max_snapshots": 4},
    loyalty_model={"min_validation_auc": 0.0},
)
LAST_DAY = FIRST_DAY + dt.timedelta(days=7)
TABLES = {
    "raw_events": (),
    "raw_event_rejects": (),
    "user_daily_activity": (),
    "user_profile": (),
    "user_features": (),
    "loyalty_training_set": (),
    "loyalty_model": ("trained_at", "model_uri"),
    "loyalty_raw_scores": (),
    "loyalty_scores": (),
}


class Shops(LocalGraph):
    """A local graph whose loyalty clients are ``default`` and ``clients``."""

    def __init__(self, home, clients):
        super().__init__(home)
        self.resources = local_resources(load_settings({"KARTE_HOME": str(home)}), clients)
        self.warehouse = self.resources["warehouse"]

    def run(self, start, end=None, client=None, run_config=QUICK, raise_on_error=True):
        from dagster import materialize

        from karte_assets.definitions import ASSETS
        from karte_assets_tests.graph import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

        tags = {
            ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: (end or start).isoformat(),
        }
        if client:
            tags[CLIENT_TAG] = client
        return materialize(
            ASSETS,
            resources=self.resources,
            run_config=run_config,
            instance=self.instance,
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def rows(self, table: str, client: str) -> pd.DataFrame:
        frame = self.table(table, drop=TABLES.get(table, ()))
        return frame[frame["client_id"] == client].reset_index(drop=True)


@pytest.mark.slow
def test_two_shops_with_the_same_user_ids_never_read_or_write_each_others_rows(tmp_path):
    shared = Shops(tmp_path / "shared", [SHOP_A, SHOP_B])
    assert shared.run(FIRST_DAY, LAST_DAY).success  # every client: default, shop-a, shop-b
    events = shared.table("raw_events")
    users = {shop: set(events[events["client_id"] == shop]["user_id"]) for shop in ("shop-a", "shop-b")}
    overlap = users["shop-a"] & users["shop-b"]
    assert len(overlap) > 20, "the shops must share user ids for this test to mean anything"
    models = shared.table("loyalty_model")
    trained = models[models["status"] == "trained"]
    assert {"shop-a", "shop-b"} <= set(trained["client_id"]), "each shop has a model of its own"
    assert trained.groupby("client_id")["model_uri"].nunique().sum() == trained["model_uri"].nunique()

    # shop-a alone, in its own warehouse: the same rows in every table, so nothing of shop-b (or
    # default) reached shop-a's events, features, training set, model or scores.
    alone = Shops(tmp_path / "alone", [SHOP_A])
    assert alone.run(FIRST_DAY, LAST_DAY, client="shop-a").success
    assert set(alone.table("loyalty_scores")["client_id"]) == {"shop-a"}
    for table in TABLES:
        pd.testing.assert_frame_equal(shared.rows(table, "shop-a"), alone.rows(table, "shop-a"), obj=table)
    scores = shared.rows("loyalty_scores", "shop-a")
    assert (
        scores[scores["partition_date"] == pd.Timestamp(LAST_DAY)]["model_version"]
        != "baseline:purchases_90d"
    ).all()

    # shop-b's audience: its profile keeps every user, its features, training snapshots and scores
    # only those seen in the 3 days up to their day (never a later one: point in time).
    profile = shared.rows("user_profile", "shop-b")
    recent = profile[profile["partition_date"] - profile["last_seen_date"] < pd.Timedelta(days=3)]
    audience = recent.set_index(["partition_date", "user_id"]).index
    features = shared.rows("user_features", "shop-b").set_index(["partition_date", "user_id"]).index
    assert features.sort_values().equals(audience.sort_values())
    assert len(features) < len(profile), "the rule must leave users out for this check to mean anything"
    snapshots = shared.rows("loyalty_training_set", "shop-b")
    assert snapshots.set_index(["snapshot_date", "user_id"]).index.isin(audience).all()
    scored = shared.rows("loyalty_scores", "shop-b").set_index(["partition_date", "user_id"]).index
    assert scored.sort_values().equals(audience.sort_values())

    # A run of shop-b alone, with other tier shares, rewrites shop-b's rows and no one else's.
    before = {table: {shop: shared.rows(table, shop) for shop in ("default", "shop-a")} for table in TABLES}
    other = {
        "ops": {**QUICK["ops"], "loyalty_scores": {"config": {"tier_a_share": 0.05, "tier_b_share": 0.05}}}
    }
    assert shared.run(LAST_DAY, client="shop-b", run_config=other).success
    for table in TABLES:
        for shop, rows in before[table].items():
            pd.testing.assert_frame_equal(shared.rows(table, shop), rows, obj=f"{table} of {shop}")
    tiers = shared.rows("loyalty_scores", "shop-b")
    tiers = tiers[tiers["partition_date"] == pd.Timestamp(LAST_DAY)]["coupon_tier"].value_counts()
    assert tiers["A"] == int(
        len(shared.rows("user_features", "shop-b").query("partition_date == @LAST_DAY")) * 0.05
    )

    # Exports: one shop's audience, exactly its tiered users.
    audience = export_audience(shared.warehouse, LAST_DAY, "shop-a").to_pandas()
    expected = scores[
        (scores["partition_date"] == pd.Timestamp(LAST_DAY)) & (scores["coupon_tier"] != "none")
    ]
    assert sorted(audience["user_id"]) == sorted(expected["user_id"])
    exported = shared.table("coupon_audience")
    assert set(exported["client_id"]) == {"shop-a"}


def test_a_write_refuses_rows_of_a_client_it_was_not_given_and_keeps_other_clients(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "karte.duckdb"))
    day = FIRST_DAY
    mine = pd.DataFrame({"client_id": ["shop-a", "shop-b"], "user_id": ["u1", "u1"], "x": [1, 2]})
    assert warehouse.replace_partition_with_rows("t", day, mine, clients=["shop-a", "shop-b"]) == 2
    # shop-a's rows replaced; shop-b's untouched although it has the same user id.
    assert warehouse.replace_partition_with_rows("t", day, mine.head(1).assign(x=5), clients=["shop-a"]) == 1
    with warehouse.connect() as connection:
        rows = connection.execute("SELECT client_id, user_id, x FROM t ORDER BY client_id").fetchall()
    assert rows == [("shop-a", "u1", 5), ("shop-b", "u1", 2)]
    with pytest.raises(Exception, match="row of client shop-b outside the clients of this write"):
        warehouse.replace_partition_with_rows("t", day, mine, clients=["shop-a"])
    with warehouse.connect() as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 2, "nothing was written"
    assert warehouse.logged_clients("t", day, ["shop-a", "shop-b", "shop-c"]) == {"shop-a", "shop-b"}


def test_the_run_tag_selects_one_client_and_an_unknown_one_fails_naming_the_known_ones():
    registry = default_registry(load_settings({}), [SHOP_A, SHOP_B])
    assert registry.ids() == ["default", "shop-a", "shop-b"]
    assert [c.client_id for c in registry.for_run({})] == ["default", "shop-a", "shop-b"]
    assert [c.client_id for c in registry.for_run({CLIENT_TAG: "shop-b"})] == ["shop-b"]
    with pytest.raises(Failure, match="no loyalty client 'shop-c' .* known: default, shop-a, shop-b"):
        registry.for_run({CLIENT_TAG: "shop-c"})
    with pytest.raises(ValueError, match="client 'shop-a' is defined twice"):
        default_registry(load_settings({}), [SHOP_A, SHOP_A])
    with pytest.raises(ValueError, match="first_day 2026-05-01 is before KARTE_PARTITIONS_START"):
        default_registry(load_settings({}), [LoyaltyClient(client_id="early", first_day="2026-05-01")])


def test_a_client_takes_its_own_parameters_and_the_run_config_overrides_them():
    from karte_assets.assets.features import FeaturesConfig
    from karte_assets.assets.scores import ScoresConfig
    from karte_assets.assets.training import ModelConfig

    assert SHOP_B.config(ScoresConfig()).tier_a_share == 0.3
    assert SHOP_B.config(ScoresConfig(tier_a_share=0.05)).tier_a_share == 0.05
    tuned = LoyaltyClient(client_id="tuned", lightgbm={"num_leaves": 7})
    assert tuned.config(ModelConfig()).num_leaves == 7
    assert tuned.config(ModelConfig(num_leaves=15)).num_leaves == 15
    assert SHOP_B.config(FeaturesConfig()).audience_days == 3
    assert SHOP_B.config(FeaturesConfig(audience_days=90)).audience_days == 90
    assert SHOP_A.config(FeaturesConfig()).audience_days is None


LOYALTY_REFUSED = [
    ("client_id: Shop A", "client_id", "client_id 'Shop A' is not a client id"),
    ("client_id: s\ntier_a_share: 0.8\ntier_b_share: 0.3", "", "tier_a_share + tier_b_share = 1.10"),
    ("client_id: s\nlightgbm: {num_leavs: 3}", "lightgbm", "lightgbm has unknown fields ['num_leavs']"),
    (
        "client_id: s\nlightgbm: {learning_rate: -1}",
        "lightgbm",
        "learning_rate\n  Input should be greater than 0",
    ),
    ("client_id: s\ntimezone: Mars/Olympus", "timezone", "'Mars/Olympus' is not a known IANA time zone"),
    ("client_id: s\nfirst_day: 2026-13-01", "first_day", "'2026-13-01' is not a date in YYYY-MM-DD form"),
    ("client_id: s\nworker_pool: {gpus: 2}", "worker_pool", "unknown worker pool fields ['gpus']"),
    ("client_id: s\nhorizon_days: 0", "horizon_days", "Input should be greater than or equal to 1"),
    ("client_id: s\naudience_days: 0", "audience_days", "Input should be greater than or equal to 1"),
    ("client_id: s\nbogus: 1", "bogus", "Extra inputs are not permitted"),
]
DEMAND_REFUSED = [
    ("client_id: s\nproduct_column: sku id", "product_column", "'sku id' is not a column name"),
    ("client_id: s\nquantity_column: qty.n", "quantity_column", "'qty.n' is not a column name"),
    ("client_id: s\nhorizon_days: 400", "horizon_days", "Input should be less than or equal to 366"),
    ("client_id: s\nhistory_days: 7", "history_days", "Input should be greater than or equal to 28"),
    ("client_id: s\nlightgbm: {leaves: 3}", "lightgbm", "lightgbm has unknown fields ['leaves']"),
    ("client_id: s\ninventory_source: stock.xlsx", "inventory_source", 'is not "synthetic" or a .csv'),
    ("client_id: s\nreselect_every_days: 0", "reselect_every_days", "greater than or equal to 1"),
    ("client_id: s\nbogus: 1", "bogus", "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(
    ("component", "yaml", "field", "message"),
    [(LoyaltyScoring, *case) for case in LOYALTY_REFUSED]
    + [(DemandForecast, *case) for case in DEMAND_REFUSED],
)
def test_the_component_refuses_bad_attributes_naming_the_field(component, yaml, field, message):
    with pytest.raises(Exception) as raised:
        component.resolve_from_yaml(yaml)
    assert message in str(raised.value) and field in str(raised.value), str(raised.value)
