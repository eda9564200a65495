"""Reading DLQ topics from the beginning: every record on every partition, none skipped."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from modelbus_cli.dlq import read_dlq


async def _topic_with_one_record_per_partition(bootstrap: str, partitions: int) -> str:
    topic = f"modelbus.readtest-{uuid.uuid4().hex[:8]}.v1.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for p in range(partitions):
            await producer.send_and_wait(topic, b"body", key=f"k{p}".encode(), partition=p)
    finally:
        await producer.stop()
    return topic


async def test_single_records_on_many_partitions_are_all_read(kafka_bootstrap):
    """One record per partition is the case where a racing offset reset skipped records."""
    topic = await _topic_with_one_record_per_partition(kafka_bootstrap, 6)
    for _ in range(3):  # the race was timing dependent: read repeatedly
        records = await read_dlq(kafka_bootstrap, [topic])
        assert sorted(r.key for r in records) == [f"k{p}".encode() for p in range(6)]
        assert all(r.info is None and r.dlq_id.startswith("dlq:") for r in records)


async def test_limit_stops_early(kafka_bootstrap):
    topic = await _topic_with_one_record_per_partition(kafka_bootstrap, 4)
    records = await read_dlq(kafka_bootstrap, [topic], limit=2)
    assert len(records) == 2
