"""Broker plumbing: the producer every service publishes with, consumer construction, topics.

Publishing awaits the broker's acknowledgement before returning, so a handler that returns
has durably handed its output over; only then does the consumer commit the input offset.
No idempotent producer or transactions are used (not every Kafka-protocol broker has them):
duplicates are handled by consumers deduplicating on event ids. Every event published with
:meth:`EventProducer.publish` or :meth:`EventProducer.publish_bytes` is signed as the
producer's role (:mod:`modelbus_runtime.signing`); :meth:`EventProducer.publish_raw` sends
records as given (dead letters and redrives keep the original's signature).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from modelbus_schemas import cloudevents as ce
from modelbus_schemas import encode
from pydantic import BaseModel

from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import Signer
from modelbus_runtime.tracing import inject

log = logging.getLogger(__name__)


class EventProducer:
    """Publishes contract events with CloudEvents headers, keyed by request id, signed as
    ``role`` (the service's name unless given)."""

    def __init__(self, settings: RuntimeSettings, source: str, *, role: str | None = None) -> None:
        self.settings = settings
        self.source = f"/modelbus/{source}"
        self.signer = Signer(settings.signing_ring(), role or source)
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_options(),
            linger_ms=settings.linger_ms,
            acks="all" if settings.acks == "all" else int(settings.acks),
            enable_idempotence=False,
            max_request_size=max(settings.max_message_bytes * 2, 2 * 1024 * 1024),
            request_timeout_ms=15_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(
        self,
        topic: str,
        event: BaseModel,
        *,
        key: str,
        event_id: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        await self.publish_bytes(topic, key=key, value=encode(event), event_id=event_id,
                                 ce_type=event.CE_TYPE, headers=headers)

    async def publish_bytes(
        self,
        topic: str,
        *,
        key: str,
        value: bytes,
        event_id: str,
        ce_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish an already encoded event with CloudEvents headers and trace context."""
        extra = dict(headers or {})
        inject(extra)
        out = ce.ce_headers(event_id=event_id, ce_type=ce_type, source=self.source, extra=extra)
        raw_key = key.encode()
        out.append(self.signer.header(topic, raw_key, value, event_id.encode(), ce_type.encode()))
        await self.publish_raw(topic, raw_key, value, out)

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: ce.Headers
    ) -> None:
        delivery = await self._producer.send(topic, value=value, key=key, headers=headers)
        await delivery


def build_consumer(
    settings: RuntimeSettings,
    *,
    group_id: str,
    topics: list[str] | None = None,
    pattern: str | None = None,
    fetch_max_wait_ms: int | None = None,
) -> AIOKafkaConsumer:
    """A group consumer with manual commits; ``fetch_max_wait_ms`` overrides the settings'
    poll wait for a consumer off the request path (approvals, audit)."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=group_id,
        client_id=f"{group_id}-{settings.instance_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms or settings.fetch_max_wait_ms,
        max_poll_records=settings.max_poll_records,
        max_partition_fetch_bytes=max(settings.max_message_bytes * 2, 2 * 1024 * 1024),
        metadata_max_age_ms=5_000 if pattern else 300_000,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )
    return consumer


async def ensure_topics(settings: RuntimeSettings, topics: list[str], attempts: int = 30) -> None:
    """Create missing topics (with the configured partitions and replication factor); safe to
    call concurrently."""
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                await admin.create_topics(
                    [NewTopic(t, settings.topic_partitions, settings.topic_replication_factor)
                     for t in missing]
                )
                log.info("created topics", extra={"fields": {"topics": missing}})
            return
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("broker not ready (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
