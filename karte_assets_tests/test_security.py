"""No secret or personal field leaks from a run: not into logs, metadata, status records or tables."""

import datetime as dt
import json

import pandas as pd
from dagster import build_sensor_context
from dagster._serdes import serialize_value

from karte_assets.automation.sensors import run_status_publisher
from karte_assets.definitions import ASSETS
from karte_assets.synthetic import SyntheticWorld, generate_day
from karte_assets_tests.graph import FIRST_DAY, config_with, days

SECRET = "planted-secret-7f3a9c1e5b2d4f60"
DAY = FIRST_DAY + dt.timedelta(days=14)  # the first day with a model under the fast config
DERIVED_TABLES = [asset.key.path[-1] for asset in ASSETS if asset.key.path[-1] != "raw_events"]
SCORE_COLUMNS = {
    "partition_date",
    "client_id",
    "user_id",
    "loyal_score",
    "score_rank",
    "score_decile",
    "coupon_tier",
    "model_version",
    "model_date",
}


def events_with_personal_fields(path) -> str:
    world = SyntheticWorld(start=FIRST_DAY, new_users_per_day=40.0)
    frame = pd.concat(
        [generate_day(world, day, "Asia/Tokyo") for day in days(FIRST_DAY, DAY)], ignore_index=True
    )
    frame["email"] = frame["user_id"] + "@example.com"
    frame["full_name"] = "Name of " + frame["user_id"]
    frame.to_parquet(path)
    return str(path)


def test_a_planted_secret_and_personal_fields_stay_out_of_everything_the_run_leaves(
    graph, tmp_path, monkeypatch
):
    monkeypatch.setenv("COMET_API_KEY", SECRET)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"/secrets/{SECRET}.json")
    source = events_with_personal_fields(tmp_path / "events.parquet")
    result = graph.materialize(FIRST_DAY, DAY, run_config=config_with(raw_events={"source": source}))
    assert graph.table("loyalty_model", DAY)["status"].iloc[0] == "trained"
    run_status_publisher(
        build_sensor_context(instance=graph.instance, resources={"status": graph.resources["status"]})
    )

    logs = [serialize_value(entry) for entry in graph.instance.all_logs(result.run_id)]
    assert len(logs) > 50
    assert not [entry for entry in logs if SECRET in entry]
    status = (graph.home / "status.jsonl").read_text()
    assert json.loads(status.splitlines()[0])["run_id"] == result.run_id and SECRET not in status
    for path in graph.home.rglob("*"):
        if path.is_file() and path.suffix != ".duckdb":
            assert SECRET.encode() not in path.read_bytes(), path

    scores = graph.table("loyalty_scores", DAY)
    assert set(scores.columns) == SCORE_COLUMNS
    for table in DERIVED_TABLES:
        cells = graph.table(table).astype(str).to_numpy().ravel()
        assert not any("@example.com" in cell or "Name of" in cell for cell in cells), table
