"""The bounded broker (``modelbus run --bounded``) under sustained produce: the broker's
resident memory stays flat and its object store's grows by a small fraction of what was
produced (the memory broker holds every byte), the retention deletes old batches, and a new
group reading from the earliest offset starts at the first kept record."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from modelbus_cli.monitor import rss_mb
from modelbus_cli.stack import Stack

RECORD = b"r" * 256 * 1024
RUN_S = 100.0
RETENTION_S = 15.0


def held_mb(stack: Stack) -> dict[str, float]:
    """Resident MB of the broker and of its object store."""
    return {c.name: rss_mb(c.proc.pid) or 0 for c in stack.group.children
            if c.name in ("broker", "object-store")}


async def produce_for(bootstrap: str, stack: Stack,
                      seconds: float) -> tuple[int, list[dict[str, float]]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * 2**20)
    await producer.start()
    sent, samples, began = 0, [], time.monotonic()
    next_sample = began
    try:
        while time.monotonic() - began < seconds:
            await asyncio.gather(*(producer.send_and_wait("load", RECORD, key=str(i).encode())
                                   for i in range(8)))
            sent += 8
            if stack.sweeper.due():
                await asyncio.to_thread(stack.sweeper.sweep)
            if time.monotonic() >= next_sample:
                samples.append(held_mb(stack))
                next_sample += 5
        await producer.send_and_wait("load", b"last", key=b"last")
    finally:
        await producer.stop()
    return sent, samples


async def first_record_of_new_group(bootstrap: str) -> tuple[int, bytes]:
    consumer = AIOKafkaConsumer("load", bootstrap_servers=bootstrap, group_id="late-reader",
                                auto_offset_reset="earliest", max_partition_fetch_bytes=2**21)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=20_000, max_records=1)
        record = next(r for records in batch.values() for r in records)
        return record.offset, record.value
    finally:
        await consumer.stop()


def test_bounded_broker_memory_stays_flat_under_sustained_produce(tmp_path):
    stack = Stack(tmp_path, providers=(), retention_s=RETENTION_S)
    try:
        bootstrap = stack.start_broker()
        stack.sweeper.every_s = 5

        async def scenario():
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            await admin.create_topics([NewTopic("load", 1, 1)])
            await admin.close()
            sent, samples = await produce_for(bootstrap, stack, RUN_S)
            await asyncio.to_thread(stack.sweeper.sweep)
            return sent, samples, await first_record_of_new_group(bootstrap)

        sent, samples, (offset, _) = asyncio.run(scenario())
    finally:
        stack.stop()
    produced_mb = sent * len(RECORD) / 2**20
    broker = [round(s["broker"], 1) for s in samples]
    store = [round(s["object-store"], 1) for s in samples]
    print(f"\nproduced {produced_mb:.0f} MB in {RUN_S:.0f} s, retention {RETENTION_S:.0f} s; "
          f"resident MB every 5 s: broker {broker}, object store {store}; "
          f"batches deleted: {stack.sweeper.deleted}")
    assert produced_mb > 100  # the memory broker would hold all of it (see the README)
    assert max(broker) - min(broker) < 10, broker
    assert store[-1] - store[0] < 0.1 * produced_mb, store
    assert stack.sweeper.deleted > 0
    assert offset > 0  # a new group starts at the first kept record, not at a deleted one
