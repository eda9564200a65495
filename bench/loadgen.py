"""Open-loop load against the pipeline and against the simulator directly, in one process.

Requests are sent on a fixed schedule whatever the responses do (open loop), so queueing
shows up as latency instead of silently lowering the offered rate.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from modelbus_schemas.topics import REQUESTS, RESPONSES

HEADERS = [("ce_specversion", b"1.0"), ("ce_source", b"/bench"),
           ("ce_type", b"io.modelbus.request.v1"), ("content-type", b"application/json")]


def _request(rid: str, task: str) -> bytes:
    return json.dumps({"request_id": rid, "task": task, "caller": {"tenant": "bench"},
                       "messages": [{"role": "user", "content": "benchmark question"}]}).encode()


class Pipeline:
    """Produces requests and times their responses."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=2)
        self.sent: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        await self.consumer.topics()
        tps = [TopicPartition(RESPONSES, p) for p in self.consumer.partitions_for_topic(RESPONSES)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    rid = r.key.decode()
                    started = self.sent.get(rid)
                    if started is not None and rid not in self.latency:
                        self.latency[rid] = (now - started) * 1000

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.producer.stop()
        await self.consumer.stop()

    async def quiesce(self, quiet_s: float = 2.0, limit_s: float = 60.0) -> None:
        """Wait until no response has arrived for ``quiet_s`` (a backlog left by a saturated
        step must not be billed to the next one)."""
        deadline = time.perf_counter() + limit_s
        seen = len(self.latency)
        quiet_since = time.perf_counter()
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
            if len(self.latency) != seen:
                seen, quiet_since = len(self.latency), time.perf_counter()
            elif time.perf_counter() - quiet_since >= quiet_s:
                return

    async def run(self, rate: float, seconds: float, task: str = "summarize",
                  drain_s: float = 10.0) -> list[float]:
        tag = uuid.uuid4().hex[:6]
        ids = [f"bench-{tag}-{i}" for i in range(int(rate * seconds))]
        start = time.perf_counter()
        for n, rid in enumerate(ids):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent[rid] = time.perf_counter()
            await self.producer.send(REQUESTS, _request(rid, task), key=rid.encode(),
                                     headers=HEADERS + [("ce_id", rid.encode())])
        deadline = time.perf_counter() + drain_s
        while time.perf_counter() < deadline and not all(i in self.latency for i in ids):
            await asyncio.sleep(0.05)
        return [self.latency[i] for i in ids if i in self.latency]


async def direct(base_url: str, model: str, rate: float, seconds: float) -> list[float]:
    """The same call straight to the simulator with httpx: the baseline."""
    body = {"model": model, "messages": [{"role": "user", "content": "benchmark question"}]}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30,
                                 headers={"Authorization": "Bearer bench"}) as client:
        async def one() -> None:
            t0 = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)

        # connect before timing, as the pipeline's workers are connected by their warm-up
        (await client.post("/v1/chat/completions", json=body)).raise_for_status()
        start = time.perf_counter()
        tasks = []
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies
