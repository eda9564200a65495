"""Reading a topic from its end, on every partition, without a consumer group.

The gateway's listeners (its reply topic, :mod:`~modelbus_gateway.replies`; the stream
topic, :mod:`~modelbus_gateway.stream_listener`) read this way: the consumer assigns all
partitions and pins its position at the end *before* reporting ready, so nothing published
for a call made after start can be missed, and nothing is committed (a call whose process
restarted is gone with its HTTP connection). Each record goes to :meth:`TopicTail.handle`;
a record the handler fails on is logged and skipped, never stopping the loop.

Its fetches are paced like the runtime consumers' (:class:`~modelbus_runtime.fetchwait.FetchPacer`):
with nothing fetched and no call ``expecting`` a record for ``idle_after_s``, the broker
fetch wait becomes the idle one, so an instance at rest sends a few fetches a second
instead of one per ``fetch_max_wait_ms``; a call waiting for a record keeps it busy.

Exposes ``start``/``stop``/``ready`` like the runtime's consumers, so the service runner
starts it, reports readiness from it and stops it on shutdown (after ``before_stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from modelbus_runtime.fetchwait import FetchPacer
from modelbus_runtime.kafka import ensure_topics
from modelbus_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)


class TopicTail:
    def __init__(self, settings: RuntimeSettings, topic: str, *, name: str,
                 partitions: int | None = None,
                 before_stop: Callable[[], Awaitable[None]] | None = None,
                 expecting: Callable[[], int] = lambda: 0) -> None:
        """``partitions``: those of the topic if this instance creates it (default: the
        settings' ``topic_partitions``); ``expecting()``: how many calls wait for records
        of this topic now (while any does, fetches never idle)."""
        self.settings = settings
        self.topic = topic
        self.name = name
        self.partitions = partitions
        self.before_stop = before_stop
        self.expecting = expecting
        self.ring = settings.signing_ring()
        self.ready = False
        self._consumer: AIOKafkaConsumer | None = None
        self._pacer: FetchPacer | None = None
        self._task: asyncio.Task | None = None

    def handle(self, record) -> None:  # pragma: no cover - every listener overrides it
        raise NotImplementedError

    async def start(self) -> None:
        settings = self.settings
        if self.partitions is not None:
            settings = settings.model_copy(update={"topic_partitions": self.partitions})
        await ensure_topics(settings, [self.topic])
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_options(), group_id=None,
            client_id=f"{self.name}-{self.settings.instance_id}", enable_auto_commit=False,
            auto_offset_reset="latest", fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=max(self.settings.max_message_bytes * 2, 2 * 1024 * 1024),
        )
        await consumer.start()
        self._consumer = consumer
        self._pacer = FetchPacer.from_settings(consumer, self.settings)
        parts = None
        for _ in range(100):
            await consumer.topics()
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        if not parts:
            raise RuntimeError(f"topic {self.topic} has no partitions")
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._task = asyncio.create_task(self._run(), name=self.name)
        self.ready = True
        log.info("reading %s from its end", self.topic)

    async def _run(self) -> None:
        assert self._consumer is not None and self._pacer is not None
        while True:
            poll_ms = await self._pacer.before_fetch()
            try:
                batches = await self._consumer.getmany(timeout_ms=poll_ms, max_records=1000)
            except KafkaError as exc:
                log.warning("fetch from %s failed (%s); retrying", self.topic,
                            exc.__class__.__name__)
                await asyncio.sleep(0.2)
                continue
            self._pacer.after_fetch(bool(batches), self.expecting())
            for records in batches.values():
                for record in records:
                    try:
                        self.handle(record)
                    except Exception:  # a bug in one record's handling never stops the loop
                        log.exception("could not handle %s@%s:%s", self.topic,
                                      record.partition, record.offset)

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
