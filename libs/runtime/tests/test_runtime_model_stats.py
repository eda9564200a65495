"""ModelStats against the real Redis: rolling EWMA per model, per-token speed, freshness."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from modelbus_runtime.model_stats import ModelStats


@pytest.fixture
async def redis(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_snapshot_follows_recent_samples_and_leaves_unknown_models_out(redis):
    stats = ModelStats(redis, window=20)
    fast, slow, unseen = (("openai", f"m-{uuid.uuid4().hex[:8]}") for _ in range(3))
    for _ in range(10):
        await stats.observe(*fast, latency_ms=100, output_tokens=50)
        await stats.observe(*slow, latency_ms=100, output_tokens=50)
    for _ in range(10):
        await stats.observe(*slow, latency_ms=500, output_tokens=50)
    snap = await stats.snapshot([fast, slow, unseen])
    assert unseen not in snap
    assert snap[fast].latency_ms == pytest.approx(100)
    assert snap[fast].ms_per_output_token == pytest.approx(2.0)
    assert snap[fast].samples == 10 and snap[slow].samples == 20
    assert snap[slow].latency_ms > 450, "the EWMA ends on the newest samples"


async def test_window_is_bounded_and_concurrent_observations_are_all_kept(redis):
    stats = ModelStats(redis, window=30)
    target = ("gemini", f"m-{uuid.uuid4().hex[:8]}")
    await asyncio.gather(*(stats.observe(*target, 10.0, 0) for _ in range(25)))
    assert (await stats.snapshot([target]))[target].samples == 25
    await asyncio.gather(*(stats.observe(*target, 10.0, 0) for _ in range(25)))
    snap = (await stats.snapshot([target]))[target]
    assert snap.samples == 30 and snap.ms_per_output_token is None


async def test_stale_samples_are_ignored(redis):
    target = ("anthropic", f"m-{uuid.uuid4().hex[:8]}")
    await ModelStats(redis).observe(*target, 42.0, 3)
    assert target in await ModelStats(redis).snapshot([target])
    assert target not in await ModelStats(redis, max_age_s=-1).snapshot([target])
