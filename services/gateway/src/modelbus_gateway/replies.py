"""This instance's reply topic: created at start, read on every partition, no consumer group.

Each gateway instance owns one topic (``modelbus.responses.gateway-<instance>.v1``) that
its request events name as ``reply_to``; responses are handed to a callback. The consumer
assigns all partitions and pins its position at the end *before* reporting ready, so no
response to a call made after start can be missed. Nothing is committed: a call whose
process restarted is gone with its HTTP connection.

Only a genuine response reaches a caller (:func:`accept`): the record's signature must
verify under the service key ring and name a role allowed to answer on the topic
(``writer_roles``: the router or the aggregator). An unsigned, forged or wrong-role record,
and one that does not decode, is dropped with a warning and counted in
``modelbus_gateway_replies_refused_total`` (the audit consumer records it anyway).

Exposes ``start``/``stop``/``ready`` like the runtime's consumers, so the service runner
starts it, reports readiness from it and stops it on shutdown (after ``before_stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from modelbus_runtime.kafka import ensure_topics
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import KeyRing, Unauthenticated, verify
from modelbus_schemas import DecodeError, ResponseEvent, decode
from modelbus_schemas.topics import writer_roles

from modelbus_gateway.metrics import REPLIES_REFUSED

log = logging.getLogger(__name__)


def reply_topic_for(instance_id: str) -> str:
    """The reply topic of an instance; the id is reduced to characters a topic name allows."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", instance_id.lower()).strip("-._")[:200] or "default"
    return f"modelbus.responses.gateway-{safe}.v1"


def accept(ring: KeyRing, topic: str, record) -> ResponseEvent | None:
    """The response a reply-topic record carries, if it is genuine; else None (logged and
    counted, never handed to a caller)."""
    try:
        role = verify(ring, topic=topic, key=record.key, value=record.value,
                      headers=record.headers or (),
                      allowed_roles=writer_roles(topic) or ())
    except Unauthenticated as exc:
        REPLIES_REFUSED.labels(reason="unauthenticated").inc()
        log.warning("dropped a reply that is not authentic on %s@%s:%s: %s", topic,
                    record.partition, record.offset, exc)
        return None
    try:
        return decode(ResponseEvent, record.value)
    except DecodeError as exc:
        REPLIES_REFUSED.labels(reason="undecodable").inc()
        log.warning("undecodable reply from %s on %s@%s:%s: %s", role, topic,
                    record.partition, record.offset, exc)
        return None


class ReplyListener:
    def __init__(self, settings: RuntimeSettings, topic: str, partitions: int,
                 on_response: Callable[[ResponseEvent], None],
                 before_stop: Callable[[], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self.partitions = partitions
        self.on_response = on_response
        self.before_stop = before_stop
        self.ring = settings.signing_ring()
        self.ready = False
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await ensure_topics(self.settings.model_copy(update={"topic_partitions": self.partitions}),
                            [self.topic])
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_options(), group_id=None,
            client_id=f"gateway-replies-{self.settings.instance_id}", enable_auto_commit=False,
            auto_offset_reset="latest", fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=max(self.settings.max_message_bytes * 2, 2 * 1024 * 1024),
        )
        await consumer.start()
        self._consumer = consumer
        parts = None
        for _ in range(100):
            await consumer.topics()
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        if not parts:
            raise RuntimeError(f"reply topic {self.topic} has no partitions")
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._task = asyncio.create_task(self._run(), name="gateway-replies")
        self.ready = True
        log.info("listening for responses on %s", self.topic)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=1000)
            except KafkaError as exc:
                log.warning("reply fetch failed (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(0.2)
                continue
            for records in batches.values():
                for record in records:
                    response = accept(self.ring, self.topic, record)
                    if response is not None:
                        self.on_response(response)

    async def stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
