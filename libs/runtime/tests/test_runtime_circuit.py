"""Circuit breakers shared through Redis (the machine's Redis, or a private valkey-server):
the rolling window, open/half-open/closed transitions seen by two instances, the pipelined
read for the router, and the local fallback when Redis is unreachable."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from modelbus_runtime.circuit import CircuitBreakers, LocalBreaker


@pytest.fixture
async def pair(redis_url):
    prefix = f"test:cb:{uuid.uuid4().hex[:8]}"
    clients = [aioredis.Redis.from_url(redis_url, socket_timeout=0.5) for _ in range(2)]
    yield [CircuitBreakers(c, failure_threshold=3, window_s=30, open_s=0.5, prefix=prefix)
           for c in clients]
    for c in clients:
        await c.aclose()


async def test_runtime_circuit_opens_at_threshold_for_every_instance(pair):
    a, b = pair
    for _ in range(2):
        await a.record("p", "m", ok=False)
    assert await b.state("p", "m") == "closed" and await b.allow("p", "m")
    await b.record("p", "m", ok=False)  # failures of both instances add up
    assert await a.state("p", "m") == "open"
    assert not await a.allow("p", "m") and not await b.allow("p", "m")
    assert await a.open_targets([("p", "m"), ("p", "other")]) == {("p", "m")}


async def test_runtime_circuit_half_open_probe_closes_or_reopens(pair):
    a, b = pair
    for _ in range(3):
        await a.record("p", "m", ok=False)
    await asyncio.sleep(0.6)
    assert await b.state("p", "m") == "half_open"
    assert await a.open_targets([("p", "m")]) == set()
    assert await a.allow("p", "m") and not await b.allow("p", "m")  # one probe only
    await a.record("p", "m", ok=False)  # the probe failed: open again
    assert await b.state("p", "m") == "open"
    await asyncio.sleep(0.6)
    assert await b.allow("p", "m")
    await b.record("p", "m", ok=True)
    assert await a.state("p", "m") == "closed" and await a.allow("p", "m")


async def test_runtime_circuit_successes_do_not_reset_the_window_but_age_does(redis_url):
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.5)
    breakers = CircuitBreakers(client, failure_threshold=2, window_s=0.3, open_s=5,
                               prefix=f"test:cb:{uuid.uuid4().hex[:8]}")
    await breakers.record("p", "m", ok=False)
    await asyncio.sleep(0.4)  # the first failure leaves the window
    await breakers.record("p", "m", ok=False)
    assert await breakers.state("p", "m") == "closed"
    await breakers.record("p", "m", ok=False)
    assert await breakers.state("p", "m") == "open"
    await client.aclose()


async def test_runtime_circuit_degrades_to_local_when_redis_is_down():
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2,
                          socket_connect_timeout=0.2)
    breakers = CircuitBreakers(dead, failure_threshold=2, window_s=30, open_s=60)
    assert await breakers.allow("p", "m")
    for _ in range(2):
        await breakers.record("p", "m", ok=False)
    assert not await breakers.allow("p", "m")
    assert await breakers.state("p", "m") == "open"
    await dead.aclose()


def test_runtime_local_breaker_is_bounded_and_follows_the_same_rules():
    local = LocalBreaker(1, 30, 10, max_targets=3)
    for i in range(5):
        local.record(("p", str(i)), ok=False, now=0)
    assert len(local._targets) == 3
    assert not local.allow(("p", "4"), now=1) and local.allow(("p", "4"), now=11)
    assert not local.allow(("p", "4"), now=12)  # the probe is out
    local.record(("p", "4"), ok=True, now=12)
    assert local.state(("p", "4"), now=12) == "closed"
