"""Open-loop load for fault scenarios: requests at a constant rate, whatever happens."""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaProducer
from modelbus_schemas.topics import REQUESTS


def request(rid: str, task: str = "summarize", **extra) -> bytes:
    return json.dumps({"request_id": rid, "task": task,
                       "messages": [{"role": "user", "content": f"fault test {rid}"}],
                       "caller": {"tenant": "faults", "team": "sre"}, **extra}).encode()


def headers(rid: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", rid.encode()), ("ce_source", b"/faults"),
            ("ce_type", b"io.modelbus.request.v1"), ("content-type", b"application/json")]


async def produce_at_rate(bootstrap: str, ids: list[str], rate: float,
                          task: str = "summarize", **extra) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    try:
        start = time.perf_counter()
        pending = []
        for n, rid in enumerate(ids):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(await producer.send(REQUESTS, request(rid, task, **extra), key=rid.encode(),
                                               headers=headers(rid)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
