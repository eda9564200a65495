"""Redis client construction with short socket timeouts, so an outage fails fast, never hangs.

Retries are off: every caller has its own defined behaviour for an outage (retry in place,
degrade to a local bound, fail closed), which a hidden client-side retry would only delay.
``max_connections`` gives a bounded pool that makes bursts wait briefly for a connection
instead of failing (a worker with a thousand calls in flight needs that).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from modelbus_runtime.settings import RuntimeSettings


def build_redis(settings: RuntimeSettings, max_connections: int | None = None) -> aioredis.Redis:
    timeout = settings.redis_socket_timeout_s
    common = dict(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
    )
    if max_connections:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=max_connections, timeout=max(1.0, timeout * 2),
            **common,
        )
        return aioredis.Redis(connection_pool=pool)
    return aioredis.Redis.from_url(settings.redis_url, decode_responses=False, **common)
