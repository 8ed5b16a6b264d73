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


@pytest.mark.slow
def test_dg_scaffolds_a_client_that_checks_and_materialises_alone(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", project)
    shutil.copytree(
        REPO_ROOT / "karte_assets", project / "karte_assets", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The copy's package comes first, ahead of the editable install of this worktree.
    env = {**os.environ, "PYTHONPATH": str(project), "KARTE_HOME": str(tmp_path / "karte")}

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
