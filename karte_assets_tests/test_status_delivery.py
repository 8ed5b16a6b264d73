"""Status delivery end to end: real runs, the sensor, the official Pub/Sub client, a loopback Pub/Sub.

At least once and nothing lost: an outage delays messages, a restarted daemon sends nothing that
was acknowledged, and a message is sent twice only when its first publish had an unknown outcome.
"""

import dataclasses
import json
import time
from collections import Counter

import grpc
import pytest
from dagster import DagsterInstance, build_sensor_context
from dagster._core.instance.ref import InstanceRef

from karte_assets.automation.sensors import BACKOFF_FIRST_SECONDS, DeliveryCursor, run_status_publisher
from karte_assets.resources.pubsub_status import PubSubStatusPublisher
from karte_assets_tests.fakes.pubsub import PROJECT, TOPIC, emulated_topic, pull_all
from karte_assets_tests.finished_runs import one_run_of_each_outcome
from karte_assets_tests.graph import LocalGraph


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """A Dagster instance directory holding a succeeded, a failed and a cancelled run of the graph."""
    home = tmp_path_factory.mktemp("karte")
    graph = LocalGraph(home)
    (home / "dagster").mkdir()
    graph.instance = DagsterInstance.local_temp(str(home / "dagster"))
    return str(home / "dagster"), one_run_of_each_outcome(graph)


@pytest.fixture
def pubsub(monkeypatch):
    with emulated_topic(monkeypatch) as fake:
        yield fake


def tick(instance_dir: str, cursor: DeliveryCursor | None = None) -> tuple[DeliveryCursor, str]:
    """One sensor evaluation as a freshly started daemon makes it: new instance, new resources."""
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(instance_dir))
    status = PubSubStatusPublisher(project=PROJECT, topic=TOPIC, deadline_seconds=1.0)
    with build_sensor_context(
        instance=instance, cursor=cursor.serialize() if cursor else None, resources={"status": status}
    ) as context:
        skip = run_status_publisher(context)
    return DeliveryCursor.parse(context.cursor), skip.skip_message


def time_passes(cursor: DeliveryCursor) -> DeliveryCursor:
    return dataclasses.replace(cursor, retry_at=0.0)


def by_key(messages) -> Counter:
    return Counter(message.attributes["idempotency_key"] for message in messages)


def test_every_finished_run_is_published_once_and_a_restarted_daemon_sends_nothing_again(runs, pubsub):
    instance_dir, run_ids = runs
    cursor, _ = tick(instance_dir)
    messages = pull_all()
    assert by_key(messages) == Counter(f"{run_id}:{status}" for status, run_id in run_ids.items())

    records = {message.attributes["status"]: json.loads(message.data) for message in messages}
    for status, record in records.items():
        assert record["run_id"] == run_ids[status] and record["environment"] == "local"
    success, failure, cancel = records["SUCCESS"], records["FAILURE"], records["CANCELED"]
    assert success["partitions"] == {"start": "2026-06-01", "end": "2026-06-01"}
    assert {a["asset"]: a["outcome"] for a in success["assets"]}["loyalty_scores"] == "materialized"
    assert success["model_id"] == "baseline:purchases_90d" and success["error"] is None
    assert success["started_at"] < success["ended_at"]
    assert "matches no file" in failure["error"]
    assert {a["asset"]: a["outcome"] for a in failure["assets"]}["raw_events"] == "failed"
    assert cancel["error"] is None
    failed_attributes = next(m.attributes for m in messages if m.attributes["status"] == "FAILURE")
    assert (failed_attributes["asset_raw_events"], failed_attributes["env"]) == ("failed", "local")

    assert cursor.failures == 0 and cursor.after > 0
    calls = pubsub.publish_calls
    assert tick(instance_dir, cursor)[0] == cursor
    assert pull_all() == [] and pubsub.publish_calls == calls


def test_an_outage_delays_the_messages_backs_off_and_loses_none(runs, pubsub):
    instance_dir, run_ids = runs
    pubsub.down()
    started = time.time()
    cursor, reason = tick(instance_dir)
    assert "failed on run" in reason
    assert (cursor.after, cursor.failures) == (0, 1)
    assert cursor.retry_at == pytest.approx(started + BACKOFF_FIRST_SECONDS, abs=5)

    pubsub.up()
    unchanged, reason = tick(instance_dir, cursor)
    assert unchanged == cursor and reason.startswith("backing off after 1 failed ticks")
    assert pubsub.publish_calls == 0

    # Up again but failing every publish: the tick gives up within the publisher's deadline.
    pubsub.fail_publishes(1000, grpc.StatusCode.UNAVAILABLE)
    started = time.monotonic()
    cursor, _ = tick(instance_dir, time_passes(cursor))
    assert time.monotonic() - started < 5
    assert 1 < pubsub.publish_calls < 10
    assert (cursor.after, cursor.failures) == (0, 2)
    assert cursor.retry_at - time.time() == pytest.approx(2 * BACKOFF_FIRST_SECONDS, abs=5)
    assert pull_all() == []

    pubsub.heal()
    cursor, _ = tick(instance_dir, time_passes(cursor))
    assert cursor.failures == 0
    assert by_key(pull_all()) == Counter(f"{run_id}:{status}" for status, run_id in run_ids.items())


def test_the_cursor_moves_past_each_acknowledged_run_so_a_failure_mid_tick_sends_none_twice(runs, pubsub):
    instance_dir, run_ids = runs
    pubsub.fail_publishes(1000, after=1)
    cursor, _ = tick(instance_dir)
    (first,) = pull_all()
    assert cursor.after > 0 and cursor.failures == 1

    pubsub.heal()
    tick(instance_dir, time_passes(cursor))
    rest = pull_all()
    assert by_key([first, *rest]) == Counter(f"{run_id}:{status}" for status, run_id in run_ids.items())


def test_a_publish_with_an_unknown_outcome_is_sent_again_with_the_same_key_and_payload(runs, pubsub):
    instance_dir, run_ids = runs
    # Stored, but every answer is lost: the sensor cannot know, and must send it again.
    pubsub.fail_publishes(1000, grpc.StatusCode.DEADLINE_EXCEEDED, after_storing=True)
    cursor, _ = tick(instance_dir)
    assert cursor.after == 0
    pubsub.heal()
    tick(instance_dir, time_passes(cursor))

    messages = pull_all()
    counts = by_key(messages)
    assert set(counts) == {f"{run_id}:{status}" for status, run_id in run_ids.items()}
    (repeated,) = [key for key, count in counts.items() if count > 1]
    assert sorted(counts.values())[:2] == [1, 1]
    assert len({m.data for m in messages if m.attributes["idempotency_key"] == repeated}) == 1


def test_the_plain_storage_id_cursor_of_earlier_versions_resumes_where_it_was():
    # A reset to 0 would send the status of every run in the instance's history again.
    assert DeliveryCursor.parse("42") == DeliveryCursor(after=42)
    assert DeliveryCursor.parse(DeliveryCursor(7, 2, 1.5).serialize()) == DeliveryCursor(7, 2, 1.5)
