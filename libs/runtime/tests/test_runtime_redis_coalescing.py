"""The coalescing Redis client against a real Redis: concurrent single commands share one
pipeline, each caller gets its own reply or error, scripts load on NOSCRIPT, and an
unreachable server fails every waiting caller instead of hanging one."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from modelbus_runtime.redis import CoalescingRedis, build_redis
from modelbus_runtime.settings import RuntimeSettings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


class CountingRedis(CoalescingRedis):
    pipelines = 0

    def pipeline(self, *args, **kwargs):
        CountingRedis.pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
async def client(redis_url):
    redis = CountingRedis.from_url(redis_url, socket_timeout=1)
    CountingRedis.pipelines = 0
    yield redis
    await redis.aclose()


async def test_runtime_redis_concurrent_commands_share_one_round_trip(client):
    prefix = f"test:coalesce:{uuid.uuid4().hex[:8]}"
    await asyncio.gather(*(client.set(f"{prefix}:{i}", i, ex=30) for i in range(300)))
    values = await asyncio.gather(*(client.get(f"{prefix}:{i}") for i in range(300)))
    assert values == [str(i).encode() for i in range(300)]
    assert CountingRedis.pipelines == 2  # 600 commands, two loop iterations, two pipelines


async def test_runtime_redis_an_error_reaches_only_its_own_caller(client):
    key = f"test:coalesce:{uuid.uuid4().hex[:8]}"
    await client.set(key, "text", ex=30)
    replies = await asyncio.gather(client.incr(key), client.get(key), client.exists(key),
                                   return_exceptions=True)
    assert isinstance(replies[0], ResponseError)
    assert replies[1:] == [b"text", 1]


async def test_runtime_redis_scripts_load_on_noscript_and_run_batched(client):
    marker = uuid.uuid4().hex  # a script body the server has never seen
    script = client.register_script(f"-- {marker}\nreturn tonumber(ARGV[1]) * 2")
    results = await asyncio.gather(*(script(keys=[], args=[i]) for i in range(50)))
    assert results == [i * 2 for i in range(50)]
    assert await script(keys=[], args=[21]) == 42


async def test_runtime_redis_unreachable_server_fails_every_waiting_caller():
    settings = RuntimeSettings(redis_url="redis://127.0.0.1:1/0", redis_socket_timeout_s=0.2)
    redis = build_redis(settings)
    try:
        replies = await asyncio.wait_for(
            asyncio.gather(*(redis.get(f"k{i}") for i in range(20)), return_exceptions=True),
            timeout=5,
        )
    finally:
        await redis.aclose()
    assert len(replies) == 20
    assert all(isinstance(r, RedisConnectionError | OSError) for r in replies)


async def test_runtime_redis_a_cancelled_caller_does_not_disturb_the_others(client):
    key = f"test:coalesce:{uuid.uuid4().hex[:8]}"
    await client.set(key, "v", ex=30)
    doomed = asyncio.ensure_future(client.get(key))
    kept = asyncio.ensure_future(client.get(key))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await kept == b"v"
    with pytest.raises(asyncio.CancelledError):
        await doomed
