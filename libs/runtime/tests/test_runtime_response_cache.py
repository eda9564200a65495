"""ResponseCache against the real Redis: round trip, TTL carried in the key, tenant isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from modelbus_runtime.response_cache import KEY_PREFIX, ResponseCache, make_cache_key, ttl_of
from modelbus_schemas import ResponseEvent


@pytest.fixture
async def redis(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _response(status: str = "ok") -> ResponseEvent:
    return ResponseEvent(event_id="r:response", request_id="r", status=status, output="hi",
                         models=["openai/m"], created_at=datetime.now(UTC))


def test_keys_differ_by_tenant_model_prompt_and_params_and_carry_the_ttl():
    base = ("acme", ["openai/m"], [{"role": "user", "content": "x"}], {"temperature": 0}, 60)
    key = make_cache_key(*base)
    assert key == make_cache_key(*base) and ttl_of(key) == 60
    for i, other in enumerate(["globex", ["openai/n"], [{"role": "user", "content": "y"}],
                               {"temperature": 1}]):
        changed = list(base)
        changed[i] = other
        assert make_cache_key(*changed) != key


async def test_put_then_get_round_trips_with_the_ttl_from_the_key(redis):
    cache = ResponseCache(redis)
    key = make_cache_key(uuid.uuid4().hex, ["openai/m"], "p", {}, 77)
    assert await cache.get(key) is None
    await cache.put(key, _response())
    got = await cache.get(key)
    assert got is not None and got.output == "hi"
    assert 0 < await redis.ttl(KEY_PREFIX + key) <= 77


async def test_errors_are_never_cached(redis):
    cache = ResponseCache(redis)
    key = make_cache_key(uuid.uuid4().hex, ["openai/m"], "p", {}, 60)
    await cache.put(key, _response("error"))
    assert await cache.get(key) is None
