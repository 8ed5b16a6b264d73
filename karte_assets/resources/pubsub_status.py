"""Run status records as messages on a Pub/Sub topic, for the consumers of the scores."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dagster import InitResourceContext
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from pydantic import PrivateAttr

from karte_assets.resources.status import StatusPublisher

if TYPE_CHECKING:  # the client library costs a second of the code location's load: imported on first use
    from google.cloud import pubsub_v1

# Errors after which the message may or may not have been stored: publishing again is safe,
# since subscribers de-duplicate on the idempotency key.
RETRYABLE = (
    exceptions.ServiceUnavailable,
    exceptions.DeadlineExceeded,
    exceptions.InternalServerError,
    exceptions.TooManyRequests,
    exceptions.Aborted,
    exceptions.Cancelled,
    exceptions.Unknown,
)


def message_attributes(record: Mapping[str, object]) -> dict[str, str]:
    """What subscribers filter on without parsing the payload.

    ``asset_<name>`` carries that asset's outcome, so a subscription can filter, for example,
    ``attributes.asset_loyalty_scores = "failed"``.
    """
    attributes = {
        "status": str(record["status"]),
        "env": str(record["environment"]),
        "run_id": str(record["run_id"]),
        "idempotency_key": str(record["idempotency_key"]),
    }
    if record.get("model_id"):
        attributes["model_id"] = str(record["model_id"])
    for asset in record["assets"]:
        attributes["asset_" + str(asset["asset"]).replace("/", "__")] = str(asset["outcome"])
    return attributes


class PubSubStatusPublisher(StatusPublisher):
    """Publishes each record as one JSON message to ``projects/<project>/topics/<topic>`` (credentials from ADC)."""

    project: str
    topic: str
    deadline_seconds: float = 20.0  # one record, retries included; then the sensor backs off
    _client: pubsub_v1.PublisherClient | None = PrivateAttr(default=None)

    def publish(self, record):
        if self._client is None:
            # Built on first use, not at import or load time: building it finds the credentials.
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.PublisherClient()
        retry = Retry(
            predicate=if_exception_type(*RETRYABLE),
            initial=0.25,
            maximum=min(5.0, self.deadline_seconds),
            multiplier=2.0,
            timeout=self.deadline_seconds,
        )
        future = self._client.publish(
            self._client.topic_path(self.project, self.topic),
            json.dumps(record, sort_keys=True, default=str).encode(),
            retry=retry,
            timeout=self.deadline_seconds,
            **message_attributes(record),
        )
        # Returns once Pub/Sub has acknowledged the message; raises what the last attempt raised.
        future.result(timeout=self.deadline_seconds + 5.0)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.transport.close()
