"""Admission without HTTP: keys, the per-key limit, the failed-authentication throttle
(real Redis), and what happens when Redis is unreachable (limits held per replica)."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from modelbus_gateway.admission import Admission
from modelbus_gateway.auth import ApiKeyEntry, ApiKeys, hash_key
from modelbus_gateway.errors import GatewayError


def _admission(redis, keys: dict[str, int | None], **limits) -> Admission:
    entries = [ApiKeyEntry(key_sha256=hash_key(k), tenant="t", requests_per_min=rpm)
               for k, rpm in keys.items()]
    settings = {"key_requests_per_min": 60, "key_burst": 2, "auth_failures_per_min": 6,
                "auth_failure_burst": 3, **limits}
    return Admission(redis, ApiKeys(entries), prefix=f"mb:test-{uuid.uuid4().hex[:8]}",
                     **settings)


async def _statuses(admission: Admission, authorization: str | None, n: int,
                    address: str = "10.0.0.1") -> list[int]:
    out = []
    for _ in range(n):
        try:
            await admission.admit(authorization, address)
            out.append(200)
        except GatewayError as err:
            out.append(err.status)
    return out


async def test_a_key_gets_its_burst_then_429_and_an_entry_may_override_the_rate(redis_client):
    admission = _admission(redis_client, {"k-default": None, "k-free": 0, "k-slow": 6})
    assert await _statuses(admission, "Bearer k-default", 5) == [200, 200, 200, 429, 429]
    assert await _statuses(admission, "Bearer k-free", 10) == [200] * 10
    slow = await _statuses(admission, "Bearer k-slow", 4)
    assert slow == [200, 200, 200, 429]
    with pytest.raises(GatewayError) as caught:
        await admission.admit("Bearer k-slow", "10.0.0.1")
    assert caught.value.retry_after_s >= 9, "6/min: the next call in about 10 s"
    match = await admission.admit("Bearer k-free", None)
    assert match.key_id == hash_key("k-free")[:12] and match.caller.tenant == "t"


async def test_failed_authentication_throttles_the_address_not_others(redis_client):
    admission = _admission(redis_client, {"k-good": 0})
    assert await _statuses(admission, "Bearer wrong", 6) == [401] * 4 + [429] * 2
    assert await _statuses(admission, None, 1) == [429], "a missing key is a failure too"
    assert await _statuses(admission, "Bearer k-good", 1) == [429]
    assert await _statuses(admission, "Bearer k-good", 1, "10.0.0.2") == [200]
    with pytest.raises(GatewayError) as caught:
        await admission.admit("Bearer wrong", "10.0.0.1")
    assert caught.value.code == "auth_throttled" and caught.value.retry_after_s >= 1


async def test_without_redis_each_replica_still_limits():
    down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        admission = _admission(down, {"k": None})
        assert await _statuses(admission, "Bearer k", 4) == [200, 200, 200, 429]
        assert await _statuses(admission, "Bearer nope", 5, "10.9.9.9") == [401] * 4 + [429]
    finally:
        await down.aclose()
