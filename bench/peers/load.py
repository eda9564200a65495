"""The callers: one aiohttp session per HTTP target, plain aiokafka for the Kafka path.

aiohttp, not httpx: an httpx client capped every target near 45 req/s at high concurrency,
which would measure the client. Each target answers :meth:`call` with the latency of one
request in ms (raising on anything but a good answer); :func:`closed_loop` keeps ``callers``
of them busy for a while, :func:`interleaved` takes one target after the other.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from modelbus_schemas.topics import REQUESTS

from bench.loadgen import HEADERS, Pipeline, _request

PROMPT = [{"role": "user", "content": "Summarise: Kafka is a distributed log."}]


@dataclass
class HttpTarget:
    """An OpenAI-compatible endpoint: the mock, a LiteLLM proxy or the modelbus gateway."""

    name: str
    url: str
    key: str
    model: str
    pids: Callable[[], dict[str, int]] = dict
    session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def start(self) -> None:
        # idle connections dropped before uvicorn closes them (5 s): no request on a dead one
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60),
            headers={"authorization": f"Bearer {self.key}"})

    async def stop(self) -> None:
        if self.session:
            await self.session.close()
            self.session = None

    async def call(self) -> float:
        body = {"model": self.model, "messages": PROMPT}
        started = time.perf_counter()
        async with self.session.post(self.url + "/v1/chat/completions", json=body) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {resp.status} {payload[:200]!r}")
        return (time.perf_counter() - started) * 1000


class KafkaTarget(Pipeline):
    """The modelbus Kafka path: produce a request event, wait for its response event (the
    producer and the response consumer of ``bench/loadgen.py``, each answer resolving the
    caller that waits for it)."""

    def __init__(self, name: str, bootstrap: str, task: str = "summarize",
                 pids: Callable[[], dict[str, int]] = dict) -> None:
        super().__init__(bootstrap)
        self.name, self.task, self.pids = name, task, pids
        self._waiting: dict[str, asyncio.Future] = {}

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            for records in batch.values():
                for record in records:
                    waiter = self._waiting.pop(record.key.decode(), None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(record.value)

    async def call(self) -> float:
        rid = f"peers-{uuid.uuid4().hex}"
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[rid] = waiter
        started = time.perf_counter()
        await self.producer.send(REQUESTS, _request(rid, self.task), key=rid.encode(),
                                 headers=HEADERS + [("ce_id", rid.encode())])
        try:
            value = await asyncio.wait_for(waiter, 60)
        finally:
            self._waiting.pop(rid, None)
        elapsed = (time.perf_counter() - started) * 1000
        response = json.loads(value)
        if response.get("status") != "ok":
            raise RuntimeError(f"{self.name}: {response.get('status')} {response.get('error')}")
        return elapsed


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0


async def closed_loop(target, callers: int, seconds: float) -> Outcome:
    """``callers`` callers, each sending its next request as soon as its last one returned."""
    out = Outcome()
    end = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < end:
            try:
                out.latencies_ms.append(await target.call())
            except Exception as exc:  # noqa: BLE001 - counted and shown, never hidden
                out.errors += 1
                out.first_error = out.first_error or f"{type(exc).__name__}: {exc}"[:300]

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    out.seconds = time.perf_counter() - started
    return out


async def interleaved(targets: list, rounds: int) -> dict[str, Outcome]:
    """One request at a time: target 1, target 2, …, then again, ``rounds`` times."""
    outs = {t.name: Outcome() for t in targets}
    for _ in range(rounds):
        for target in targets:
            try:
                outs[target.name].latencies_ms.append(await target.call())
            except Exception as exc:  # noqa: BLE001
                outs[target.name].errors += 1
                outs[target.name].first_error = outs[target.name].first_error or str(exc)[:300]
    return outs
