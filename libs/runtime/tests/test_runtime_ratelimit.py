"""Rate limits shared through Redis: two limiters (two replicas) share one budget, tokens
are charged and settled, refusals say how long to wait, and Redis being down degrades to
a local limit."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis
from modelbus_runtime.ratelimit import RateLimit, RateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


@pytest.fixture
async def clients(redis_url):
    made = [aioredis.Redis.from_url(redis_url, socket_timeout=0.5) for _ in range(2)]
    yield made
    for c in made:
        await c.aclose()


def _scope() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_runtime_ratelimit_two_replicas_share_one_request_budget(clients):
    scope = _scope()
    # One request per 10 s with a burst allowance of 50 s: 6 at once, then one per 10 s
    # (slow on purpose, so a busy machine cannot refill the bucket during the test).
    limit = RateLimit(requests_per_min=6, burst_s=50.0)
    a, b = (RateLimiter(c, scope, limit) for c in clients)
    admitted = 0
    for i in range(40):
        admitted += (await (a if i % 2 else b).try_acquire()) == 0.0
    assert admitted == 6  # the burst allowance, counted once for both replicas
    wait = await a.try_acquire()
    assert 8 < wait <= 10


async def test_runtime_ratelimit_tokens_are_charged_and_settled(clients):
    scope = _scope()
    limit = RateLimit(tokens_per_min=6000, burst_s=1.0)  # 100 tokens/s
    a, b = (RateLimiter(c, scope, limit) for c in clients)
    assert await a.try_acquire(tokens=150) == 0.0  # debt 1.5 s
    refused = await b.try_acquire(tokens=10)
    assert 0.2 < refused <= 0.5
    await a.settle(-120)  # the call used 30 tokens, not 150
    assert await b.try_acquire(tokens=10) == 0.0


async def test_runtime_ratelimit_acquire_waits_and_respects_timeout(clients):
    limit = RateLimit(requests_per_min=1200, burst_s=0.0)  # one every 50 ms, no burst
    limiter = RateLimiter(clients[0], _scope(), limit)
    assert await limiter.acquire()
    started = time.monotonic()
    assert await limiter.acquire()
    assert time.monotonic() - started >= 0.04
    assert await limiter.acquire(timeout_s=0.001) is False


async def test_runtime_ratelimit_degrades_to_local_when_redis_is_down():
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2,
                          socket_connect_timeout=0.2)
    limiter = RateLimiter(dead, _scope(), RateLimit(requests_per_min=1, burst_s=0.0))
    assert await limiter.try_acquire() == 0.0
    assert await limiter.try_acquire() > 30
    await dead.aclose()


async def test_runtime_ratelimit_warns_once_per_outage_not_per_call(caplog):
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2,
                          socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RateLimiter(dead, _scope(), RateLimit(requests_per_min=600, burst_s=60.0))
    with caplog.at_level("WARNING", logger="modelbus_runtime.ratelimit"):
        for _ in range(20):
            await limiter.try_acquire()
    warnings = [r for r in caplog.records if "rate limit store unavailable" in r.getMessage()]
    assert len(warnings) == 1
    await dead.aclose()


def test_runtime_ratelimit_zero_means_unlimited():
    assert not RateLimit().enabled and RateLimit(tokens_per_min=1).enabled
