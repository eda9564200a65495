"""Key rotation on a real broker: while both keys are configured, events signed with the old
one are accepted; once it is removed, they are refused to the DLQ as unauthenticated."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.dlq import DeadLetterPublisher
from modelbus_runtime.kafka import EventProducer, ensure_topics
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import ResponseEvent
from modelbus_schemas.topics import REPLY_TOPIC_PREFIX, dlq_topic

from tests.upstream import TailReader

OLD = "2026-q3:" + "old-secret-" * 4
NEW = "2026-q4:" + "new-secret-" * 4


def settings(bootstrap: str, ring: str) -> RuntimeSettings:
    return RuntimeSettings(kafka_bootstrap_servers=bootstrap, signing_keys=ring,
                           topic_partitions=1)


def response(rid: str) -> ResponseEvent:
    return ResponseEvent(event_id=f"{rid}:response", request_id=rid, status="ok",
                         output="fine", created_at=datetime.now(UTC))


async def publish(bootstrap: str, ring: str, topic: str, rid: str) -> None:
    producer = EventProducer(settings(bootstrap, ring), "tests", role="aggregator")
    await producer.start()
    try:
        event = response(rid)
        await producer.publish(topic, event, key=rid, event_id=event.event_id)
    finally:
        await producer.stop()


async def consume(bootstrap: str, ring: str, topic: str, group: str, seconds: float) -> list[str]:
    config = settings(bootstrap, ring)
    seen: list[str] = []

    async def handle(message) -> None:
        seen.append(message.request_id)

    events = EventProducer(config, "tests")
    await events.start()
    consumer = EventConsumer(config, group_id=group, topics=[topic], handler=handle,
                             dlq=DeadLetterPublisher(events, "tests", 1 << 20))
    await consumer.start()
    await asyncio.sleep(seconds)
    await consumer.stop()
    await events.stop()
    return seen


async def test_old_key_accepted_during_rotation_refused_after(kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    topic, group = f"{REPLY_TOPIC_PREFIX}rotation-{run}", f"rotation-{run}"
    await ensure_topics(settings(kafka_bootstrap, NEW), [topic, dlq_topic(topic)])
    dead = TailReader(kafka_bootstrap, dlq_topic(topic))
    await dead.start()

    await publish(kafka_bootstrap, OLD, topic, "signed-old-1")
    await publish(kafka_bootstrap, f"{NEW},{OLD}", topic, "signed-new-1")
    during = await consume(kafka_bootstrap, f"{NEW},{OLD}", topic, group, 4.0)
    assert sorted(during) == ["signed-new-1", "signed-old-1"]

    await publish(kafka_bootstrap, OLD, topic, "signed-old-2")
    await publish(kafka_bootstrap, NEW, topic, "signed-new-2")
    after = await consume(kafka_bootstrap, NEW, topic, group, 4.0)
    refused = await dead.collect(lambda r: True, 1, timeout=10)
    await dead.stop()
    assert after == ["signed-new-2"]
    assert [r.key for r in refused] == [b"signed-old-2"]
    reasons = [dict(r.headers)["modelbus_dlq_reason"] for r in refused]
    assert reasons == [b"unauthenticated"]
