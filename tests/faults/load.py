"""Open-loop load for fault scenarios: requests at a constant rate, whatever happens.

A request counts as accepted only once the broker acknowledged it. A send that fails (the
broker is down or restarting) is sent again until acknowledged, so a broker outage delays
requests but never drops one; the ids acknowledged are returned for the ledger.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from modelbus_schemas.topics import REQUESTS


def request(rid: str, task: str = "summarize", **extra) -> bytes:
    return json.dumps({"request_id": rid, "task": task,
                       "messages": [{"role": "user", "content": f"fault test {rid}"}],
                       "caller": {"tenant": "faults", "team": "sre"}, **extra}).encode()


def headers(rid: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", rid.encode()), ("ce_source", b"/faults"),
            ("ce_type", b"io.modelbus.request.v1"), ("content-type", b"application/json")]


@dataclass
class Delivery:
    """What the broker acknowledged: ``accepted`` ids (each once, in acknowledgement order),
    ``resent`` sends repeated after a failure, ``refused`` ids never acknowledged."""

    accepted: list[str] = field(default_factory=list)
    resent: int = 0
    refused: list[str] = field(default_factory=list)


async def produce_at_rate(bootstrap: str, ids: list[str], rate: float,
                          task: str = "summarize", *, give_up_after_s: float = 120.0,
                          request_timeout_ms: int = 10_000, **extra) -> Delivery:
    """Send ``ids`` at ``rate`` per second; each send is retried until acknowledged or
    ``give_up_after_s`` after its due time (a send not acknowledged within
    ``request_timeout_ms`` has failed)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all",
                                request_timeout_ms=request_timeout_ms, retry_backoff_ms=200)
    await producer.start()
    delivery = Delivery()

    async def deliver(rid: str) -> None:
        deadline = time.monotonic() + give_up_after_s
        while True:
            try:
                sent = await producer.send(REQUESTS, request(rid, task, **extra),
                                           key=rid.encode(), headers=headers(rid))
                await sent
                delivery.accepted.append(rid)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    delivery.refused.append(rid)
                    return
                delivery.resent += 1
                await asyncio.sleep(0.2)

    try:
        start = time.perf_counter()
        pending = []
        for n, rid in enumerate(ids):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(deliver(rid)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return delivery
