"""A topic tail's fetches idle while no call expects a record, and stay busy while one does
(on the local broker)."""

from __future__ import annotations

import asyncio
import uuid

from modelbus_gateway.tail import TopicTail
from modelbus_runtime.settings import RuntimeSettings


class Tail(TopicTail):
    def handle(self, record) -> None:
        pass


async def _fetch_wait_after(tail: TopicTail, seconds: float) -> int:
    await tail.start()
    try:
        await asyncio.sleep(seconds)
        return tail._consumer._fetcher._fetch_max_wait_ms
    finally:
        await tail.stop()


def _settings(bootstrap: str) -> RuntimeSettings:
    return RuntimeSettings(kafka_bootstrap_servers=bootstrap, fetch_max_wait_ms=25,
                           idle_fetch_max_wait_ms=400, idle_after_s=0.3, topic_partitions=1)


async def test_a_tail_nobody_waits_on_idles(kafka_bootstrap):
    tail = Tail(_settings(kafka_bootstrap), f"test.tail.{uuid.uuid4().hex[:8]}", name="t")
    assert await _fetch_wait_after(tail, 1.5) == 400


async def test_a_tail_with_a_call_waiting_keeps_its_short_fetch_wait(kafka_bootstrap):
    tail = Tail(_settings(kafka_bootstrap), f"test.tail.{uuid.uuid4().hex[:8]}", name="t",
                expecting=lambda: 1)
    assert await _fetch_wait_after(tail, 1.5) == 25
