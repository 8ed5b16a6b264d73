"""Comet ML experiments of real trainings: offline archives opened and read; a failing tracker only warns."""

import datetime as dt
import json
import logging
import shutil
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import lightgbm as lgb
import pytest

from karte_assets.definitions import reporting_resources
from karte_assets.resources.pubsub_status import PubSubStatusPublisher
from karte_assets.resources.tracker import CometOnlineTracker, TrackingError, TrainingRecord
from karte_assets.settings import load_settings
from karte_assets.training.data import frame_sha256
from karte_assets_tests.graph import FAST_CONFIG, FIRST_DAY, LocalGraph

DAY = FIRST_DAY + dt.timedelta(days=14)  # the first day with a model under the fast config
MODEL_AND_SCORES = ["loyalty_model", "loyalty_scores"]
SECRET = "comet-key-that-must-never-show-0123456789"


@pytest.fixture(scope="module")
def upstream_warehouse(tmp_path_factory) -> Path:
    """Everything the model of DAY needs, built once; each test trains on its own copy."""
    graph = LocalGraph(tmp_path_factory.mktemp("upstream"))
    selection = [name for name in FAST_CONFIG["ops"] if name != "loyalty_model"]
    selection += ["user_daily_activity", "user_profile", "user_features"]
    assert graph.materialize(FIRST_DAY, DAY, selection=selection).success
    return Path(graph.warehouse.path)


@pytest.fixture
def graph(upstream_warehouse, tmp_path) -> LocalGraph:
    (tmp_path / "karte").mkdir()
    shutil.copy(upstream_warehouse, tmp_path / "karte" / "warehouse.duckdb")
    return LocalGraph(tmp_path / "karte")


def archive_contents(archive: Path) -> tuple[dict, list[dict], zipfile.ZipFile]:
    bundle = zipfile.ZipFile(archive)
    messages = [json.loads(line) for line in bundle.read("messages.json").splitlines() if line.strip()]
    return json.loads(bundle.read("experiment.json")), messages, bundle


def logged(messages: list[dict], kind: str) -> dict:
    """name -> value of the metrics, parameters or others an archive logged."""
    payloads = [m["payload"] for m in messages]
    if kind == "metric":
        return {p["metric"]["metricName"]: p["metric"]["metricValue"] for p in payloads if "metric" in p}
    if kind == "param":
        return {p["param"]["paramName"]: p["param"]["paramValue"] for p in payloads if "param" in p}
    return {p["key"]: p["value"] for m, p in zip(messages, payloads, strict=True) if m["type"] == "log_other"}


def uploaded(messages: list[dict], bundle: zipfile.ZipFile, file_name: str) -> bytes:
    (upload,) = [
        m["payload"]
        for m in messages
        if m["type"] == "file_upload" and m["payload"]["additional_params"].get("fileName") == file_name
    ]
    return bundle.read(upload["file_path"])


def test_a_real_training_is_an_offline_experiment_with_its_metrics_params_data_tags_and_model(graph):
    result = graph.materialize(DAY, selection=MODEL_AND_SCORES)
    model = graph.table("loyalty_model", DAY).iloc[0]
    assert model["status"] == "trained"
    metadata = result.asset_materializations_for_node("loyalty_model")[0].metadata
    archive = Path(urlparse(metadata["experiment_url"].value).path)
    assert list((graph.home / "comet").glob("*.zip")) == [archive]
    assert archive.stem == metadata["experiment_key"].value

    experiment, messages, bundle = archive_contents(archive)
    assert experiment["project_name"] == "karte-loyalty-local"
    assert {f"dagster_run_id:{result.run_id}", "asset:loyalty_model", f"partition:{DAY}"} <= set(
        experiment["tags"]
    )
    metrics = logged(messages, "metric")
    assert metrics["validation_auc"] == pytest.approx(model["validation_auc"])
    assert metrics["baseline_auc"] == pytest.approx(model["baseline_auc"])
    assert (metrics["train_rows"], metrics["validation_rows"]) == (
        model["train_rows"],
        model["validation_rows"],
    )
    params = logged(messages, "param")
    assert (params["min_data_in_leaf"], params["num_boost_round"], params["horizon_days"]) == (10, 60, 7)
    others = logged(messages, "other")
    assert others["Name"] == model["model_version"]
    assert others["dagster_run_id"] == result.run_id and others["partition"] == str(DAY)
    training_data = graph.warehouse.query_arrow("training_data", {"partition_date": DAY}).to_pandas()
    assert others["training_data_rows"] == len(training_data) == metrics["refit_rows"]
    assert others["training_data_sha256"] == frame_sha256(training_data)
    assert frame_sha256(training_data.iloc[1:]) != frame_sha256(training_data)

    model_text = Path(model["model_uri"]).read_text()
    assert uploaded(messages, bundle, "model.txt").decode() == model_text
    importance = json.loads(uploaded(messages, bundle, "feature_importance.json"))
    assert sorted(importance) == sorted(lgb.Booster(model_str=model_text).feature_name())
    assert max(importance.values()) > 0


class RefusingComet(BaseHTTPRequestHandler):
    """A Comet server that is up and refuses every API key."""

    def do_GET(self):
        self._answer(200, {"version": "3.0.0"}) if "isAlive" in self.path else self._answer(401, {})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(401, {"msg": "Invalid apiKey", "code": 401})

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(params=["down", "refuses the key"])
def broken_comet(request, monkeypatch):
    """COMET_URL_OVERRIDE pointing at a loopback Comet that is down, or up and refusing the key."""
    if request.param == "down":
        closed = socket.socket()  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url, stop = f"http://127.0.0.1:{closed.getsockname()[1]}/clientlib/", closed.close
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingComet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url, stop = f"http://127.0.0.1:{server.server_port}/clientlib/", server.shutdown
    monkeypatch.setenv("COMET_URL_OVERRIDE", url)
    # Comet's own retries, which a real outage would wait out, are not what is tested here.
    monkeypatch.setenv("COMET_HTTP_SESSION_RETRY_TOTAL", "0")
    monkeypatch.setenv("COMET_GET_OR_ADD_EXPERIMENT_RETRY_TOTAL", "0")
    yield
    stop()


@pytest.mark.usefixtures("broken_comet")
def test_a_failing_tracker_warns_in_the_run_log_and_keeps_the_model_and_the_scores(graph):
    graph.resources["tracker"] = CometOnlineTracker(project="karte-loyalty-test", api_key=SECRET)
    result = graph.materialize(DAY, selection=MODEL_AND_SCORES)
    assert result.success

    model = graph.table("loyalty_model", DAY).iloc[0]
    assert model["status"] == "trained" and Path(model["model_uri"]).is_file()
    scores = graph.table("loyalty_scores", DAY)
    assert len(scores) > 0 and (scores["model_version"] == model["model_version"]).all()

    entries = graph.instance.all_logs(result.run_id)
    warnings = [e.user_message for e in entries if e.level == logging.WARNING]
    assert any(f"model {model['model_version']} is kept but not tracked" in w for w in warnings), warnings
    metadata = result.asset_materializations_for_node("loyalty_model")[0].metadata
    assert "experiment_key" not in metadata
    assert metadata["experiment"].value.startswith("not tracked")
    assert not any(SECRET in entry.message for entry in entries)
    assert SECRET not in repr(metadata)


DEV = {
    "KARTE_ENV": "dev",
    "KARTE_GCP_PROJECT": "karte-dev-project",
    "KARTE_BQ_EVENTS_TABLE": "karte-dev-project.tracking.events",
    "KARTE_GCS_BUCKET": "karte-dev-bucket",
    "KARTE_TRAINING_IMAGE": "asia-docker.pkg.dev/karte-dev-project/karte/train:latest",
}


def test_dev_publishes_status_to_its_topic_and_reads_the_comet_key_from_the_environment_at_run_time(
    monkeypatch,
):
    resources = reporting_resources(load_settings(DEV), {"COMET_API_KEY": "set"})
    status, tracker = resources["status"], resources["tracker"]
    assert isinstance(status, PubSubStatusPublisher)
    assert (status.project, status.topic) == ("karte-dev-project", "karte-loyalty-status-dev")
    assert isinstance(tracker, CometOnlineTracker) and tracker.project == "karte-loyalty-dev"
    monkeypatch.setenv("COMET_API_KEY", SECRET)
    assert SECRET not in repr(tracker)
    assert tracker.process_config_and_initialize().api_key == SECRET


def test_dev_without_a_comet_key_still_loads_and_its_tracker_says_what_is_missing():
    tracker = reporting_resources(load_settings(DEV), {})["tracker"]
    training = TrainingRecord(
        name="m", params={}, metrics={}, feature_importance={}, datasets={}, model_text="", tags={}
    )
    with pytest.raises(TrackingError, match="set COMET_API_KEY"):
        tracker.track(training)
