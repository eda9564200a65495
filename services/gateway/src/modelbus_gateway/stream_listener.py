"""The stream topic (``modelbus.stream.v1``), read for this instance's streaming calls.

Every gateway instance reads the whole stream topic the way it reads its reply topic
(:class:`~modelbus_gateway.tail.TopicTail`: every partition, no consumer group, from the
end at start). A record's Kafka key is the request's scoped id, so a record for a call
this instance does not hold is skipped on its key alone (no signature check, no decoding).
A record for a held call must be signed by a role allowed to write the stream topic (the
adapter worker) and decode as a :class:`~modelbus_schemas.StreamEvent` of that same scoped
id; anything else is dropped with a warning. Every record read is counted in
``modelbus_gateway_stream_events_total`` by outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import StreamEvent
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import STREAM

from modelbus_gateway.metrics import STREAM_EVENTS
from modelbus_gateway.replies import authentic
from modelbus_gateway.stream_hub import StreamHub
from modelbus_gateway.tail import TopicTail

log = logging.getLogger(__name__)


def _count(outcome: str) -> None:
    STREAM_EVENTS.labels(outcome=outcome).inc()


class StreamListener(TopicTail):
    def __init__(self, settings: RuntimeSettings, hub: StreamHub, *, topic: str = STREAM,
                 before_stop: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(settings, topic, name="gateway-stream", before_stop=before_stop,
                         expecting=lambda: len(hub))
        self.hub = hub

    def handle(self, record) -> None:
        try:
            scope = record.key.decode() if record.key else ""
        except UnicodeDecodeError:
            scope = ""
        if not self.hub.wants(scope):
            _count("ignored")
            return
        event = authentic(self.ring, self.topic, record, StreamEvent, _count)
        if event is None:
            return
        if scoped_id(event.tenant, event.request_id) != scope:
            _count("mismatched")
            log.warning("dropped a stream event whose key is not its request on %s@%s:%s",
                        self.topic, record.partition, record.offset)
            return
        _count(self.hub.deliver(scope, event))
