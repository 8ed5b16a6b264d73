"""The coupon audience export: warehouse table, Parquet and CSV files, and the command."""

import datetime as dt
import os
import subprocess
import sys

import pandas as pd
import pytest

from karte_assets.export import NotScored, export_audience, write_files
from karte_assets_tests.graph import FIRST_DAY

SECOND_DAY = FIRST_DAY + dt.timedelta(days=1)
COLUMNS = ["user_id", "coupon_tier", "loyal_score", "score_rank", "model_version"]


def expected_audience(graph, day) -> pd.DataFrame:
    scores = graph.table("loyalty_scores", day)
    tiered = scores[scores["coupon_tier"] != "none"].sort_values("score_rank")
    return tiered[COLUMNS].reset_index(drop=True)


@pytest.fixture
def scored(graph):
    assert graph.materialize(FIRST_DAY, SECOND_DAY).success
    return graph


def test_the_audience_is_every_tiered_user_best_first_in_the_table_and_both_files(scored, tmp_path):
    expected = expected_audience(scored, SECOND_DAY)
    assert set(expected["coupon_tier"]) == {"A", "B"}
    tiers = scored.table("loyalty_scores", SECOND_DAY)["coupon_tier"].value_counts()
    assert len(expected) == tiers["A"] + tiers["B"]

    audience = export_audience(scored.warehouse, SECOND_DAY)
    pd.testing.assert_frame_equal(audience.to_pandas(), expected)
    parquet, csv = write_files(audience, SECOND_DAY, tmp_path / "out")
    assert (parquet.name, csv.name) == (
        "coupon_audience_2026-06-02.parquet",
        "coupon_audience_2026-06-02.csv",
    )
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), expected)
    pd.testing.assert_frame_equal(pd.read_csv(csv), expected, check_exact=False, rtol=1e-12)
    assert sorted(path.name for path in parquet.parent.iterdir()) == [csv.name, parquet.name]

    table = scored.table("coupon_audience", SECOND_DAY).drop(columns=["partition_date", "client_id"])
    pd.testing.assert_frame_equal(table, expected.sort_values(COLUMNS).reset_index(drop=True))


def test_exporting_a_day_again_replaces_only_that_day(scored):
    export_audience(scored.warehouse, FIRST_DAY)
    export_audience(scored.warehouse, SECOND_DAY)
    before = scored.table("coupon_audience")
    export_audience(scored.warehouse, SECOND_DAY)
    pd.testing.assert_frame_equal(scored.table("coupon_audience"), before)
    assert before["partition_date"].dt.date.value_counts().to_dict() == {
        FIRST_DAY: len(expected_audience(scored, FIRST_DAY)),
        SECOND_DAY: len(expected_audience(scored, SECOND_DAY)),
    }


def test_a_day_without_scores_is_refused_with_what_to_do(scored):
    with pytest.raises(
        NotScored, match="loyalty_scores has no partition 2026-06-05 for client default: materialise it first"
    ):
        export_audience(scored.warehouse, FIRST_DAY + dt.timedelta(days=4))


def test_the_command_writes_the_files_under_karte_home_and_fails_on_an_unscored_day(scored):
    def export(day: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "karte_assets.export", "--day", day],
            env={**os.environ, "KARTE_HOME": str(scored.home)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = export("2026-06-02")
    assert done.returncode == 0, done.stderr
    expected = expected_audience(scored, SECOND_DAY)
    tiers = expected["coupon_tier"].value_counts()
    assert f"{len(expected)} users (tier A: {tiers['A']}, tier B: {tiers['B']})" in done.stdout
    exports = scored.home / "exports"
    pd.testing.assert_frame_equal(pd.read_parquet(exports / "coupon_audience_2026-06-02.parquet"), expected)
    assert (exports / "coupon_audience_2026-06-02.csv").is_file()

    refused = export("2026-06-05")
    assert refused.returncode == 1
    assert "loyalty_scores has no partition 2026-06-05" in refused.stderr
