"""``EventConsumer.stop()`` against a real broker: in-flight work that finishes within the
drain bound is committed; work that does not is cancelled and left uncommitted, and the stop
returns within the bound even when every slot is taken by a handler that never returns.

Rebalances: work on a revoked partition that outlives the revoke drain bound is cancelled
(not left running beside the partition's new owner, and the group does not wait for it past
that bound); a stop during a rebalance stays within its own bound, leaving the group
included, even when a handler ignores cancellation."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from modelbus_runtime.consumer import CLOSE_RESERVE_S, EventConsumer
from modelbus_runtime.dlq import DeadLetterPublisher
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.kafka import EventProducer, ensure_topics
from modelbus_runtime.settings import RuntimeSettings

#: closing the client and leaving the group, after the drain, on a busy machine
STOP_SLACK_S = 5.0


class Handler:
    """Sleeps ``seconds`` per message. A message whose value is ``hang`` never returns
    (``hang-once``: only the first time it is handled); ``stubborn`` ignores cancellation
    until ``release`` is set."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[int] = []
        self.finished: list[int] = []
        self.hanging = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, message: Inbound) -> None:
        first = message.offset not in self.started
        self.started.append(message.offset)
        if message.value == b"hang" or (message.value == b"hang-once" and first):
            self.hanging.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        while message.value == b"stubborn" and not self.release.is_set():
            self.hanging.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()  # and carries on regardless
        await asyncio.sleep(self.seconds)
        self.finished.append(message.offset)


@pytest.fixture
async def consumer_for(kafka_bootstrap):
    """Builds a consumer of a fresh one-partition topic holding ``values`` (one key each);
    ``consumer_for.join(tp, group, handler, drain_s)`` adds a member to its group."""
    made: list[tuple[EventConsumer, EventProducer]] = []

    async def join(tp: TopicPartition, group: str, handler: Handler, drain_s: float,
                   max_in_flight: int = 16, revoke_s: float = 3.0) -> EventConsumer:
        settings = RuntimeSettings(kafka_bootstrap_servers=kafka_bootstrap,
                                   drain_timeout_s=drain_s, revoke_drain_timeout_s=revoke_s,
                                   topic_partitions=1)
        events = EventProducer(settings, "test")
        await events.start()
        consumer = EventConsumer(settings, group_id=group, topics=[tp.topic], handler=handler,
                                 dlq=DeadLetterPublisher(events, "test", 1 << 20),
                                 max_in_flight=max_in_flight, authenticate=False)
        made.append((consumer, events))
        await consumer.start()
        return consumer

    async def build(values: list[bytes], handler: Handler, drain_s: float,
                    max_in_flight: int = 16,
                    revoke_s: float = 3.0) -> tuple[EventConsumer, TopicPartition, str]:
        settings = RuntimeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_partitions=1)
        topic, group = f"test.stop.{uuid.uuid4().hex[:8]}", f"test-stop-{uuid.uuid4().hex[:8]}"
        await ensure_topics(settings, [topic])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for n, value in enumerate(values):
                await producer.send_and_wait(topic, value, key=f"k{n}".encode())
        finally:
            await producer.stop()
        tp = TopicPartition(topic, 0)
        return await join(tp, group, handler, drain_s, max_in_flight, revoke_s), tp, group

    build.join = join
    yield build
    for _, events in made:
        await events.stop()


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    try:
        return await probe.committed(tp)
    finally:
        await probe.stop()


async def until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def timed_stop(consumer: EventConsumer) -> float:
    started = time.monotonic()
    await consumer.stop()
    return time.monotonic() - started


async def test_runtime_stop_finishes_work_in_flight_and_commits_it(consumer_for,
                                                                   kafka_bootstrap):
    handler = Handler(seconds=1.0)
    consumer, tp, group = await consumer_for([b"a", b"b", b"c"], handler, drain_s=10.0)
    await until(lambda: len(handler.started) == 3)  # all three in flight
    took = await timed_stop(consumer)
    assert sorted(handler.finished) == [0, 1, 2]
    assert took < 10.0, "returned when the work was done, not at the bound"
    assert await committed(kafka_bootstrap, group, tp) == 3


async def test_runtime_stop_cancels_work_past_the_bound_and_leaves_it_uncommitted(
        consumer_for, kafka_bootstrap):
    handler = Handler(seconds=0.05)
    consumer, tp, group = await consumer_for([b"a", b"hang", b"c"], handler, drain_s=1.0)
    await until(lambda: handler.hanging.is_set() and len(handler.finished) == 2)
    took = await timed_stop(consumer)
    # the hanging handler gets the bound less the part kept for the commit and the leave
    assert 1.0 - min(CLOSE_RESERVE_S, 1.0 / 4) <= took <= 1.0 + STOP_SLACK_S
    assert handler.cancelled.is_set()
    # offset 2 finished, but behind the abandoned offset 1: both are redelivered
    assert await committed(kafka_bootstrap, group, tp) == 1


async def test_runtime_stop_returns_within_the_bound_when_every_slot_hangs(consumer_for,
                                                                          kafka_bootstrap):
    handler = Handler(seconds=0.05)
    consumer, tp, group = await consumer_for([b"hang", b"b"], handler, drain_s=1.0,
                                             max_in_flight=1)
    await until(handler.hanging.is_set)  # the fetch loop now waits for a free slot
    took = await timed_stop(consumer)
    assert took <= 1.0 + STOP_SLACK_S
    assert handler.finished == []
    assert await committed(kafka_bootstrap, group, tp) is None


async def test_runtime_revoked_work_is_cancelled_after_the_revoke_bound(consumer_for,
                                                                        kafka_bootstrap):
    handler = Handler(seconds=0.05)
    # a drain bound far above the revoke bound: waiting on the stop bound would time out
    first, tp, group = await consumer_for([b"a", b"hang-once", b"c"], handler,
                                          drain_s=120.0, revoke_s=1.0)
    await until(lambda: handler.hanging.is_set() and len(handler.finished) == 2)
    second = await consumer_for.join(tp, group, handler, drain_s=120.0, revoke_s=1.0)
    await until(handler.cancelled.is_set, timeout=40)
    # whoever owns the partition now runs offset 1 again; the cancelled run never finished
    await until(lambda: 1 in handler.finished, timeout=40)
    assert handler.finished.count(1) == 1
    assert handler.started.count(1) == 2
    for member in (first, second):
        await member.stop()
    assert await committed(kafka_bootstrap, group, tp) == 3


async def test_runtime_stop_during_a_rebalance_stays_within_its_bound(consumer_for,
                                                                       kafka_bootstrap):
    handler = Handler(seconds=0.05)
    drain_s = 8.0
    first, tp, group = await consumer_for([b"a", b"stubborn"], handler, drain_s=drain_s,
                                          revoke_s=3.0)
    await until(lambda: handler.hanging.is_set() and handler.finished == [0])
    stopping = asyncio.create_task(timed_stop(first))
    await asyncio.sleep(drain_s * 0.6)
    # a new member joins while the first is still draining: the first takes part in the
    # rebalance (its revoke callback runs) while its stop is under way
    second = await consumer_for.join(tp, group, Handler(seconds=0.05), drain_s=drain_s)
    took = await stopping
    handler.release.set()
    await second.stop()
    assert handler.cancelled.is_set()
    assert took <= drain_s + STOP_SLACK_S
    assert await committed(kafka_bootstrap, group, tp) == 1  # offset 1 was never finished


async def test_runtime_a_member_without_partitions_is_ready(consumer_for):
    """More members than partitions (a rollout's surge pod, a scale-out past the partition
    count): the member left without a partition has joined and stands by; it is ready, or a
    rollout waiting for it would wait until another member leaves."""
    handler = Handler(seconds=0.01)
    first, tp, group = await consumer_for([b"a"], handler, drain_s=5.0)
    await until(lambda: first.ready)
    second = await consumer_for.join(tp, group, handler, drain_s=5.0)
    await until(lambda: second.ready and first.ready, timeout=40)
    assert len(first.assigned) + len(second.assigned) == 1
    for member in (first, second):
        await member.stop()
