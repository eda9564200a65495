"""The circuit breaker over real HTTP and the machine's Redis, seen by two worker instances
(two handlers with their own Redis connections, HTTP clients and breakers, as two replicas
have): it opens after the threshold, the other instance stops calling, one probe after the
open period closes it again for both."""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis
from modelbus_adapter_worker.app import build_handler
from modelbus_adapter_worker.settings import WorkerSettings
from modelbus_adapter_worker.transport import HttpTransport
from modelbus_runtime.circuit import CircuitBreakers
from modelbus_schemas import ResultEvent, RetrySpec

from tests.worker.worker_helpers import make_task, unique

OPEN_S = 1.0


class Instance:
    def __init__(self, sim, redis_url: str) -> None:
        settings = WorkerSettings(provider="openai", base_url=sim.base_for("openai"),
                                  redis_url=redis_url, breaker_failure_threshold=3,
                                  breaker_window_s=30, breaker_open_s=OPEN_S)
        self.redis = aioredis.Redis.from_url(redis_url, socket_timeout=0.5)
        self.transport = HttpTransport(settings.resolved_base_url(), max_connections=10)
        self.handler = build_handler(settings, self.redis, self.transport)
        self.breakers: CircuitBreakers = self.handler.executor.breakers

    async def run(self, model: str) -> ResultEvent:
        task = make_task("openai", model, retry=RetrySpec(max_attempts=1))
        out = await self.handler.handle(task)
        return ResultEvent.model_validate(orjson.loads(out.value))

    async def close(self) -> None:
        await self.transport.close()
        await self.redis.aclose()


async def test_worker_circuit_opens_and_recovers_across_two_instances(sim, redis_url):
    model = unique("gpt-breaker")
    sim.behave(model, fail_first=3, failure={"kind": "status", "status": 503})
    a, b = Instance(sim, redis_url), Instance(sim, redis_url)
    try:
        for _ in range(3):
            assert (await a.run(model)).error.code == "retries_exhausted"
        assert await a.breakers.state("openai", model) == "open"
        assert await b.breakers.state("openai", model) == "open"
        assert ("openai", model) in await b.breakers.open_targets(
            [("openai", model), ("openai", "gpt-other")])

        refused = await b.run(model)  # the other replica does not call the provider
        assert refused.status == "error" and refused.error.code == "provider_unavailable"
        assert refused.attempts == []
        assert sim.calls(model) == 3

        await asyncio.sleep(OPEN_S + 0.2)
        assert await a.breakers.state("openai", model) == "half_open"
        probe = await b.run(model)  # the provider is healthy again: the probe closes it
        assert probe.status == "ok", probe.error
        assert await a.breakers.state("openai", model) == "closed"
        assert (await a.run(model)).status == "ok"
        assert sim.calls(model) == 5
    finally:
        await a.close()
        await b.close()


async def test_worker_half_open_lets_exactly_one_probe_through(sim, redis_url):
    model = unique("gpt-probe")
    sim.behave(model, fail_first=3, failure={"kind": "status", "status": 500})
    a, b = Instance(sim, redis_url), Instance(sim, redis_url)
    try:
        for _ in range(3):
            await a.run(model)
        await asyncio.sleep(OPEN_S + 0.2)
        verdicts = await asyncio.gather(*[i.breakers.allow("openai", model)
                                          for i in (a, b) for _ in range(5)])
        assert verdicts.count(True) == 1
    finally:
        await a.close()
        await b.close()
