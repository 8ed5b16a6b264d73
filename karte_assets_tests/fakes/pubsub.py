"""A Pub/Sub service on a loopback gRPC port, for the official client via ``PUBSUB_EMULATOR_HOST``.

It speaks the real wire protocol (``google.pubsub.v1.Publisher`` and ``Subscriber``) for the calls
the status publisher and the tests make, and can be taken down, brought back on the same port, or
told to fail the next publishes, before or after it has stored the message.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import pytest
from google.cloud import pubsub_v1
from google.protobuf import empty_pb2, timestamp_pb2
from google.pubsub_v1 import types

PROJECT = "karte-test"
TOPIC = "karte-loyalty-status-test"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/coupon-service"


@dataclass(frozen=True)
class Fault:
    """How one Publish call fails."""

    code: grpc.StatusCode
    # True: the message is stored and only the answer is lost, so the client cannot know it arrived.
    after_storing: bool


class FakePubSub:
    """Topics and subscriptions in memory; each message published to a topic goes to its subscriptions."""

    def __init__(self) -> None:
        self.port = 0
        self.publish_calls = 0
        self._topics: set[str] = set()
        self._subscriptions: dict[str, str] = {}  # name -> topic
        self._queues: dict[str, deque[types.PubsubMessage]] = {}
        self._unacked: dict[str, types.PubsubMessage] = {}  # ack id -> message
        self._faults: deque[Fault | None] = deque()  # None lets one call through
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def serving(self) -> bool:
        return self._server is not None

    def up(self) -> None:
        """Serve (again) on the same port; stored topics and messages survive a down/up."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            [
                _service(
                    "Publisher",
                    CreateTopic=(self._create_topic, types.Topic, types.Topic),
                    Publish=(self._publish, types.PublishRequest, types.PublishResponse),
                ),
                _service(
                    "Subscriber",
                    CreateSubscription=(self._create_subscription, types.Subscription, types.Subscription),
                    Pull=(self._pull, types.PullRequest, types.PullResponse),
                    Acknowledge=(self._acknowledge, types.AcknowledgeRequest, None),
                ),
            ]
        )
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def down(self) -> None:
        """Stop listening: clients get connection refused (UNAVAILABLE) until ``up``."""
        self._server.stop(grace=None).wait()
        self._server = None

    def fail_publishes(
        self,
        count: int,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        after_storing: bool = False,
        after: int = 0,
    ) -> None:
        """Answer ``count`` Publish calls with ``code``, once ``after`` more calls have gone through."""
        self._faults.extend([None] * after + [Fault(code, after_storing)] * count)

    def heal(self) -> None:
        """Drop the faults not served yet."""
        self._faults.clear()

    def _create_topic(self, topic: types.Topic, context: grpc.ServicerContext) -> types.Topic:
        with self._lock:
            if topic.name in self._topics:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{topic.name} exists")
            self._topics.add(topic.name)
        return topic

    def _create_subscription(
        self, subscription: types.Subscription, context: grpc.ServicerContext
    ) -> types.Subscription:
        with self._lock:
            if subscription.topic not in self._topics:
                context.abort(grpc.StatusCode.NOT_FOUND, f"{subscription.topic} does not exist")
            self._subscriptions[subscription.name] = subscription.topic
            self._queues[subscription.name] = deque()
        return subscription

    def _publish(self, request: types.PublishRequest, context: grpc.ServicerContext) -> types.PublishResponse:
        with self._lock:
            self.publish_calls += 1
            fault = self._faults.popleft() if self._faults else None
            if fault and not fault.after_storing:
                context.abort(fault.code, "injected fault before storing")
            if request.topic not in self._topics:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Topic not found: {request.topic}")
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            ids = []
            for message in request.messages:
                ids.append(str(next(self._ids)))
                stored = types.PubsubMessage(
                    data=message.data,
                    attributes=dict(message.attributes),
                    message_id=ids[-1],
                    publish_time=now,
                )
                for name, topic in self._subscriptions.items():
                    if topic == request.topic:
                        self._queues[name].append(stored)
            if fault:
                context.abort(fault.code, "injected fault after storing")
        return types.PublishResponse(message_ids=ids)

    def _pull(self, request: types.PullRequest, context: grpc.ServicerContext) -> types.PullResponse:
        # No ack deadlines: a pulled message is never redelivered, which is all the tests need.
        with self._lock:
            if request.subscription not in self._queues:
                context.abort(grpc.StatusCode.NOT_FOUND, f"{request.subscription} does not exist")
            queue = self._queues[request.subscription]
            received = []
            while queue and len(received) < request.max_messages:
                ack_id = f"ack-{next(self._ids)}"
                self._unacked[ack_id] = queue.popleft()
                received.append(types.ReceivedMessage(ack_id=ack_id, message=self._unacked[ack_id]))
        return types.PullResponse(received_messages=received)

    def _acknowledge(
        self, request: types.AcknowledgeRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        with self._lock:
            unknown = set(request.ack_ids) - self._unacked.keys()
            if unknown:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown ack ids {sorted(unknown)}")
            for ack_id in request.ack_ids:
                del self._unacked[ack_id]
        return empty_pb2.Empty()


def _service(name: str, **methods) -> grpc.GenericRpcHandler:
    """Handlers of ``google.pubsub.v1.<name>``: method -> (function, request type, response type)."""
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            function,
            request_deserializer=request.deserialize,
            response_serializer=response.serialize if response else empty_pb2.Empty.SerializeToString,
        )
        for method, (function, request, response) in methods.items()
    }
    return grpc.method_handlers_generic_handler(f"google.pubsub.v1.{name}", handlers)


@contextmanager
def emulated_topic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePubSub]:
    """A fake serving ``TOPIC`` and ``SUBSCRIPTION``, with ``PUBSUB_EMULATOR_HOST`` pointing at it."""
    fake = FakePubSub()
    fake.up()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", fake.host)
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.create_topic(name=publisher.topic_path(PROJECT, TOPIC)).name
    publisher.transport.close()
    with pubsub_v1.SubscriberClient() as subscriber:
        subscriber.create_subscription(name=SUBSCRIPTION, topic=topic)
    try:
        yield fake
    finally:
        if fake.serving:
            fake.down()


def pull_all() -> list[types.PubsubMessage]:
    """Every message waiting on ``SUBSCRIPTION``, pulled and acknowledged with the official client."""
    messages = []
    with pubsub_v1.SubscriberClient() as subscriber:
        while received := subscriber.pull(subscription=SUBSCRIPTION, max_messages=100).received_messages:
            subscriber.acknowledge(subscription=SUBSCRIPTION, ack_ids=[r.ack_id for r in received])
            messages += [r.message for r in received]
    return messages
