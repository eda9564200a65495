"""Reading DLQ topics from the beginning to the real end: every record on every partition,
none skipped, even when the broker's reported end offset lags what it holds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from modelbus_cli.dlq import read_dlq
from modelbus_schemas import DeadLetterInfo, DlqReason


async def _new_topic(bootstrap: str, partitions: int) -> str:
    topic = f"modelbus.readtest-{uuid.uuid4().hex[:8]}.v1.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return topic


async def _topic_with_one_record_per_partition(bootstrap: str, partitions: int) -> str:
    topic = await _new_topic(bootstrap, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for p in range(partitions):
            await producer.send_and_wait(topic, b"body", key=f"k{p}".encode(), partition=p)
    finally:
        await producer.stop()
    return topic


async def _burst_of_dead_letters(bootstrap: str, count: int, partitions: int = 3) -> str:
    """``count`` dead-letter records sent without waiting for each, so the producer batches
    them as a service's DLQ publisher under load does."""
    topic = await _new_topic(bootstrap, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        deliveries = []
        for i in range(count):
            info = DeadLetterInfo.now(
                source_topic="modelbus.requests.v1", source_partition=0, source_offset=i,
                service="router", error_class="ValidationError", error_message=f"bad {i}",
                reason=DlqReason.SCHEMA)
            deliveries.append(await producer.send(
                topic, b'{"request_id": "r-%d"}' % i + b" " * 400, key=f"r-{i}".encode(),
                headers=info.to_headers()))
        await asyncio.gather(*deliveries)
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


async def test_a_burst_listed_at_once_shows_every_record(kafka_bootstrap):
    """20 dead letters produced in a burst and listed right away by ``modelbus dlq list``: all
    20 are shown. The local broker reports the end of a partition as one past the last batch's
    base offset, so a reader that stops at the reported end showed 3 of 20."""
    for _ in range(3):
        topic = await _burst_of_dead_letters(kafka_bootstrap, 20)
        listing = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "modelbus_cli.main", "dlq", "list",
             "--bootstrap", kafka_bootstrap, "--topic", topic],
            capture_output=True, text=True, timeout=60, check=False)
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert "20 record(s)" in listing.stderr
        assert sorted(line.split(" key=")[1].split()[0] for line in lines) == sorted(
            f"r-{i}" for i in range(20))
        assert all("reason=schema service=router" in line for line in lines)


async def test_an_empty_topic_is_read_quickly(kafka_bootstrap):
    topic = await _new_topic(kafka_bootstrap, 6)
    started = time.monotonic()
    assert await read_dlq(kafka_bootstrap, [topic]) == []
    assert time.monotonic() - started < 3.0
