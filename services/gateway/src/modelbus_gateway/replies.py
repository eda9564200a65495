"""This instance's reply topic: created at start, read on every partition from its end.

Each gateway instance owns one topic (``modelbus.responses.gateway-<instance>.v1``) that
its request events name as ``reply_to``; responses are handed to a callback. The topic is
read the way :class:`~modelbus_gateway.tail.TopicTail` reads (every partition, no consumer
group, positioned at the end before reporting ready, nothing committed).

Only a genuine response reaches a caller (:func:`accept`): the record's signature must
verify under the service key ring and name a role allowed to answer on the topic
(``writer_roles``: the router or the aggregator). An unsigned, forged or wrong-role record,
and one that does not decode, is dropped with a warning and counted in
``modelbus_gateway_replies_refused_total`` (the audit consumer records it anyway).
:func:`authentic` is the same check for any internal event (the stream listener uses it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import KeyRing, Unauthenticated, verify
from modelbus_schemas import DecodeError, ResponseEvent, decode
from modelbus_schemas.topics import writer_roles

from modelbus_gateway.metrics import REPLIES_REFUSED
from modelbus_gateway.tail import TopicTail

log = logging.getLogger(__name__)

E = TypeVar("E")


def reply_topic_for(instance_id: str) -> str:
    """The reply topic of an instance; the id is reduced to characters a topic name allows."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", instance_id.lower()).strip("-._")[:200] or "default"
    return f"modelbus.responses.gateway-{safe}.v1"


def authentic(ring: KeyRing, topic: str, record, model: type[E],
              refused: Callable[[str], None]) -> E | None:
    """The ``model`` event a record carries if its signature verifies under ``ring`` as a
    role allowed to write ``topic`` and it decodes; else None, logged and reported to
    ``refused(reason)`` (``unauthenticated`` or ``undecodable``)."""
    try:
        role = verify(ring, topic=topic, key=record.key, value=record.value,
                      headers=record.headers or (),
                      allowed_roles=writer_roles(topic) or ())
    except Unauthenticated as exc:
        refused("unauthenticated")
        log.warning("dropped an event that is not authentic on %s@%s:%s: %s", topic,
                    record.partition, record.offset, exc)
        return None
    try:
        return decode(model, record.value)
    except DecodeError as exc:
        refused("undecodable")
        log.warning("undecodable event from %s on %s@%s:%s: %s", role, topic,
                    record.partition, record.offset, exc)
        return None


def _refused_reply(reason: str) -> None:
    REPLIES_REFUSED.labels(reason=reason).inc()


def accept(ring: KeyRing, topic: str, record) -> ResponseEvent | None:
    """The response a reply-topic record carries, if it is genuine; else None (logged and
    counted, never handed to a caller)."""
    return authentic(ring, topic, record, ResponseEvent, _refused_reply)


class ReplyListener(TopicTail):
    def __init__(self, settings: RuntimeSettings, topic: str, partitions: int,
                 on_response: Callable[[ResponseEvent], None],
                 before_stop: Callable[[], Awaitable[None]] | None = None,
                 expecting: Callable[[], int] = lambda: 0) -> None:
        super().__init__(settings, topic, name="gateway-replies", partitions=partitions,
                         before_stop=before_stop, expecting=expecting)
        self.on_response = on_response

    def handle(self, record) -> None:
        response = accept(self.ring, self.topic, record)
        if response is not None:
            self.on_response(response)
