"""The Pub/Sub status publisher, through the official client, against a loopback Pub/Sub."""

import json
import time

import grpc
import pytest
from google.api_core import exceptions

from karte_assets.resources.pubsub_status import PubSubStatusPublisher
from karte_assets_tests.fakes.pubsub import PROJECT, TOPIC, emulated_topic, pull_all

RECORD = {
    "run_id": "4b1c",
    "job_name": "loyalty_daily_job",
    "status": "FAILURE",
    "environment": "dev",
    "partitions": {"start": "2026-06-01", "end": "2026-06-03"},
    "assets": [
        {"asset": "loyalty_model", "outcome": "materialized", "partitions": ["2026-06-01"]},
        {"asset": "loyalty_scores", "outcome": "failed", "partitions": []},
    ],
    "model_id": "loyalty-20260601-0123456789",
    "metrics": {"validation_auc": 0.71},
    "error": "loyalty_scores: no features",
    "started_at": "2026-06-04T06:00:00+00:00",
    "ended_at": "2026-06-04T06:10:00+00:00",
    "idempotency_key": "4b1c:FAILURE",
}


@pytest.fixture
def pubsub(monkeypatch):
    with emulated_topic(monkeypatch) as fake:
        yield fake


def publisher(deadline_seconds: float = 1.0, topic: str = TOPIC) -> PubSubStatusPublisher:
    return PubSubStatusPublisher(project=PROJECT, topic=topic, deadline_seconds=deadline_seconds)


def test_a_record_is_one_json_message_with_attributes_to_filter_and_deduplicate_on(pubsub):
    publisher().publish(RECORD)
    (message,) = pull_all()
    assert json.loads(message.data) == RECORD
    assert dict(message.attributes) == {
        "status": "FAILURE",
        "env": "dev",
        "run_id": "4b1c",
        "idempotency_key": "4b1c:FAILURE",
        "model_id": "loyalty-20260601-0123456789",
        "asset_loyalty_model": "materialized",
        "asset_loyalty_scores": "failed",
    }


def test_transient_errors_are_retried_within_one_publish(pubsub):
    pubsub.fail_publishes(2, grpc.StatusCode.UNAVAILABLE)
    publisher(deadline_seconds=5.0).publish(RECORD)
    assert pubsub.publish_calls == 3
    assert len(pull_all()) == 1


def test_a_missing_topic_fails_at_once_instead_of_retrying(pubsub):
    started = time.monotonic()
    with pytest.raises(exceptions.NotFound):
        publisher(deadline_seconds=10.0, topic="no-such-topic").publish(RECORD)
    assert time.monotonic() - started < 5
    assert pubsub.publish_calls == 1


def test_a_service_that_is_down_fails_the_publish_within_its_deadline(pubsub):
    pubsub.down()
    started = time.monotonic()
    with pytest.raises(exceptions.GoogleAPIError):
        publisher(deadline_seconds=1.0).publish(RECORD)
    assert time.monotonic() - started < 4
