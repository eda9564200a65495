"""An upstream system as tests see it: plain aiokafka and the documented JSON contract only
(no modelbus helpers), so the tests prove another client could do the same."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

REQUESTS = "modelbus.requests.v1"
RESPONSES = "modelbus.responses.v1"


def request_json(request_id: str, task: str = "summarize", text: str = "hello", **extra) -> dict:
    return {
        "request_id": request_id,
        "task": task,
        "messages": [{"role": "user", "content": text}],
        "caller": {"tenant": "acme", "team": "support", "user": "u1"},
        **extra,
    }


def ce_headers(event_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"/tests/upstream"),
        ("ce_type", b"io.modelbus.request.v1"),
        ("content-type", b"application/json"),
    ]


class Upstream:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)

    async def __aenter__(self) -> Self:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()

    async def send(self, body: dict | bytes, key: str | None = None, topic: str = REQUESTS):
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        key = key or (body.get("request_id") if isinstance(body, dict) else None) or "raw"
        await self.producer.send_and_wait(topic, value, key=key.encode(), headers=ce_headers(key))

    async def tail(self, topic: str) -> TailReader:
        reader = TailReader(self.bootstrap, topic)
        await reader.start()
        return reader


class TailReader:
    """Reads a topic from its current end, on every partition, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20,
                                         enable_auto_commit=False, group_id=None,
                                         client_id=f"tail-{uuid.uuid4().hex[:6]}")

    async def start(self) -> None:
        await self.consumer.start()
        parts = None
        for _ in range(100):
            await self.consumer.topics()  # refreshes metadata of every topic
            parts = self.consumer.partitions_for_topic(self.topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts or [])]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now, before anything is produced
            await self.consumer.position(tp)

    async def collect(self, want, count: int, timeout: float = 30.0) -> list:
        """Records for which ``want(record)`` holds, until ``count`` arrived or timeout."""
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                found += [r for r in records if want(r)]
        return found

    async def stop(self) -> None:
        await self.consumer.stop()
