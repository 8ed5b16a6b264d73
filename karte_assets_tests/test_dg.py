"""The dg CLI on a copy of the project: scaffold a client instance, check the defs, materialise it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from karte_assets.settings import REPO_ROOT

DG = Path(sys.executable).with_name("dg")
# One day of the new shop alone, through the code location the copy's defs folder builds.
MATERIALISE = """
from dagster import DagsterInstance, materialize
from karte_assets.definitions import ASSETS, defs
result = materialize(
    ASSETS,
    resources=defs.resources,
    partition_key="2026-06-01",
    tags={"karte/client": "shop_new"},
    instance=DagsterInstance.ephemeral(),
    run_config={"ops": {"raw_events": {"config": {"synthetic_new_users_per_day": 20.0}}}},
)
assert result.success
"""


def _project_copy(tmp_path):
    """A copy of the project (pyproject.toml and the package) and the environment that runs it."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", project)
    shutil.copytree(
        REPO_ROOT / "karte_assets", project / "karte_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The copy's package comes first, ahead of the editable install of this worktree.
    return project, {**os.environ, "PYTHONPATH": str(project), "KARTE_HOME": str(tmp_path / "karte")}


def _run(project, env, *command: str, ok: bool = True) -> str:
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert (done.returncode == 0) == ok, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


def _shop_instance(project, env, component: str, use_case: str, shop: str) -> Path:
    """Scaffold ``shop``'s loyalty instance (its events) and its ``component`` instance, in folders of
    the shop's name under loyalty/ and ``use_case``/; the latter's defs.yaml."""
    _run(project, env, DG, "scaffold", "defs", "karte_assets.LoyaltyScoring", f"loyalty/{shop}")
    _run(project, env, DG, "scaffold", "defs", f"karte_assets.{component}", f"{use_case}/{shop}")
    instance = project / "karte_assets" / "defs" / use_case / shop / "defs.yaml"
    text = instance.read_text()
    assert f"type: karte_assets.{component}" in text and f"client_id: {shop}" in text
    return instance


@pytest.mark.slow
def test_dg_scaffolds_a_client_that_checks_and_materialises_alone(tmp_path):
    project, env = _project_copy(tmp_path)

    _run(project, env, DG, "scaffold", "defs", "karte_assets.LoyaltyScoring", "shop_new")
    instance = project / "karte_assets" / "defs" / "shop_new" / "defs.yaml"
    assert "client_id: shop_new" in instance.read_text()
    assert "All definitions loaded successfully" in _run(project, env, DG, "check", "defs")
    assert "loyalty_scores" in _run(project, env, DG, "list", "defs")

    _run(project, env, sys.executable, "-c", MATERIALISE)
    import duckdb

    with duckdb.connect(str(tmp_path / "karte" / "warehouse.duckdb"), read_only=True) as connection:
        clients = connection.execute("SELECT DISTINCT client_id FROM loyalty_scores").fetchall()
    assert clients == [("shop_new",)]

    # A bad attribute fails the check, naming the field and the file.
    instance.write_text(instance.read_text() + "  tier_a_share: 2\n")
    assert "tier_a_share" in _run(project, env, DG, "check", "defs", ok=False)


# One day of a shop's anomaly graph alone: its raw events (the loyalty graph's, so the shop is a
# loyalty client too), the behaviour features, the scores and the exclusion audience.
MATERIALISE_ANOMALY = """
from dagster import DagsterInstance, materialize
from karte_assets.assets.anomaly import ANOMALY_ASSETS
from karte_assets.definitions import ASSETS, defs
result = materialize(
    [*ASSETS, *ANOMALY_ASSETS],
    resources=defs.resources,
    partition_key="2026-06-01",
    tags={"karte/client": "shop_odd"},
    instance=DagsterInstance.ephemeral(),
    selection=["raw_events", "user_daily_activity", *(a.key.path[-1] for a in ANOMALY_ASSETS)],
    run_config={"ops": {"raw_events": {"config": {"synthetic_new_users_per_day": 300.0,
                                                   "synthetic_planted_users": 12}}}},
)
assert result.success
"""


@pytest.mark.slow
def test_dg_scaffolds_an_anomaly_client_that_checks_and_materialises_its_table_and_export(tmp_path):
    project, env = _project_copy(tmp_path)
    # The anomaly instance flags 5 % of the shop's users and writes its exclusion files where it says.
    instance = _shop_instance(project, env, "AnomalyDetection", "anomaly", "shop_odd")
    exports = tmp_path / "odd-exports"
    instance.write_text(instance.read_text() + f"  contamination: 0.05\n  exclusion_directory: {exports}\n")
    assert "All definitions loaded successfully" in _run(project, env, DG, "check", "defs")
    assert "anomaly_exclusion_audience" in _run(project, env, DG, "list", "defs")
    _run(project, env, sys.executable, "-c", MATERIALISE_ANOMALY)
    import duckdb

    with duckdb.connect(str(tmp_path / "karte" / "warehouse.duckdb"), read_only=True) as connection:
        clients, users, flagged = connection.execute(
            "SELECT string_agg(DISTINCT client_id), COUNT(*), COUNT(*) FILTER (flagged) FROM user_anomaly_scores"
        ).fetchone()
        excluded = connection.execute("SELECT COUNT(*) FROM anomaly_exclusion_audience").fetchone()[0]
    assert clients == "shop_odd" and flagged == int(0.05 * users) and excluded == flagged > 0
    assert sorted(path.suffix for path in exports.rglob("*.*")) == [".csv", ".parquet"]

    # A bad attribute fails the check, naming the field.
    instance.write_text(instance.read_text() + "  detector: forest\n")
    assert "detector" in _run(project, env, DG, "check", "defs", ok=False)


# The first 20 days of a shop's demand graph as one run (a single-run backfill): its raw events
# (the loyalty graph's), then daily demand; the backtest of one 3-day window has enough history on
# the 20th day ((1 + 1) x 3 + 14), which the forecast and the overstock table then use.
MATERIALISE_DEMAND = """
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from karte_assets.assets.demand import DEMAND_ASSETS
from karte_assets.definitions import ASSETS, defs
result = materialize(
    [*ASSETS, *DEMAND_ASSETS],
    resources=defs.resources,
    tags={"karte/client": "shop_dem", ASSET_PARTITION_RANGE_START_TAG: "2026-06-01",
          ASSET_PARTITION_RANGE_END_TAG: "2026-06-20"},
    instance=DagsterInstance.ephemeral(),
    selection=["raw_events", *(a.key.path[-1] for a in DEMAND_ASSETS)],
    run_config={"ops": {"raw_events": {"config": {"synthetic_new_users_per_day": 40.0}}}},
)
assert result.success
"""


@pytest.mark.slow
def test_dg_scaffolds_a_demand_client_that_checks_and_materialises_its_forecast_and_overstock(tmp_path):
    project, env = _project_copy(tmp_path)
    # The demand instance forecasts 3 days with a small LightGBM model, chosen by a one-window backtest.
    instance = _shop_instance(project, env, "DemandForecast", "demand", "shop_dem")
    instance.write_text(
        instance.read_text() + "  quantity_column: quantity\n  horizon_days: 3\n  history_days: 28\n"
        "  backtest_windows: 1\n  lightgbm: {n_estimators: 20}\n"
    )
    assert "All definitions loaded successfully" in _run(project, env, DG, "check", "defs")
    assert "demand_clients" in _run(project, env, DG, "list", "defs")
    _run(project, env, sys.executable, "-c", MATERIALISE_DEMAND)
    import duckdb

    with duckdb.connect(str(tmp_path / "karte" / "warehouse.duckdb"), read_only=True) as connection:

        def one(sql: str) -> tuple:
            return connection.execute(sql).fetchone()

        sold = one("SELECT string_agg(DISTINCT client_id), SUM(quantity) FROM daily_demand")
        chosen = one("SELECT client_id, model, partition_date FROM demand_model WHERE chosen")
        forecast = one(
            "SELECT string_agg(DISTINCT client_id), COUNT(DISTINCT forecast_date), COUNT(DISTINCT product_id), "
            "MIN(model_version) FROM demand_forecast WHERE partition_date = DATE '2026-06-20'"
        )
        over = one(
            "SELECT string_agg(DISTINCT client_id), COUNT(*), MIN(excess_rank), MIN(excess) "
            "FROM overstock_candidates WHERE partition_date = DATE '2026-06-20'"
        )
    assert sold[0] == "shop_dem" and sold[1] > 0
    assert chosen[0] == "shop_dem" and str(chosen[2]) == "2026-06-20"
    assert forecast[:2] == ("shop_dem", 3) and forecast[2] > 0
    assert forecast[3] == f"{chosen[1]}@2026-06-20"
    assert over[0] == "shop_dem" and over[1] > 0 and over[2] == 1 and over[3] > 0

    # A bad attribute fails the check, naming the field.
    instance.write_text(instance.read_text() + "  product_column: sku id\n")
    assert "product_column" in _run(project, env, DG, "check", "defs", ok=False)
