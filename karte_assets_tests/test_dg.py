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


@pytest.mark.slow
def test_dg_scaffolds_a_client_that_checks_and_materialises_alone(tmp_path):
    project, env = _project_copy(tmp_path)

    def dg(*args: str) -> str:
        done = subprocess.run([DG, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    dg("scaffold", "defs", "karte_assets.LoyaltyScoring", "shop_new")
    instance = project / "karte_assets" / "defs" / "shop_new" / "defs.yaml"
    assert "client_id: shop_new" in instance.read_text()
    assert "All definitions loaded successfully" in dg("check", "defs")
    assert "loyalty_scores" in dg("list", "defs")

    done = subprocess.run(
        [sys.executable, "-c", MATERIALISE], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import duckdb

    with duckdb.connect(str(tmp_path / "karte" / "warehouse.duckdb"), read_only=True) as connection:
        clients = connection.execute("SELECT DISTINCT client_id FROM loyalty_scores").fetchall()
    assert clients == [("shop_new",)]

    # A bad attribute fails the check, naming the field and the file.
    instance.write_text(instance.read_text() + "  tier_a_share: 2\n")
    failed = subprocess.run(
        [DG, "check", "defs"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert failed.returncode != 0
    assert "tier_a_share" in failed.stdout + failed.stderr


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

    def dg(*args: str, ok: bool = True) -> str:
        done = subprocess.run([DG, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done.stdout + done.stderr

    # The shop's loyalty instance brings its events; its anomaly instance, in a folder of the same
    # name under anomaly/, flags 5 % of its users and writes its exclusion files where it says.
    dg("scaffold", "defs", "karte_assets.LoyaltyScoring", "loyalty/shop_odd")
    dg("scaffold", "defs", "karte_assets.AnomalyDetection", "anomaly/shop_odd")
    instance = project / "karte_assets" / "defs" / "anomaly" / "shop_odd" / "defs.yaml"
    text = instance.read_text()
    assert "type: karte_assets.AnomalyDetection" in text and "client_id: shop_odd" in text
    exports = tmp_path / "odd-exports"
    instance.write_text(text + f"  contamination: 0.05\n  exclusion_directory: {exports}\n")
    assert "All definitions loaded successfully" in dg("check", "defs")
    assert "anomaly_exclusion_audience" in dg("list", "defs")

    done = subprocess.run(
        [sys.executable, "-c", MATERIALISE_ANOMALY],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
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
    assert "detector" in dg("check", "defs", ok=False)
