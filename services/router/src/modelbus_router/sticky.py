"""Sticky sessions for the weighted strategy: a session keeps the target it was given.

Keyed by tenant, route and ``session_id``; each use refreshes the TTL. A remembered target
that is no longer eligible is simply not honoured (the strategy draws again and the new
target is remembered instead).
"""

from __future__ import annotations

from modelbus_runtime.errors import TransientInfraError
from redis.exceptions import RedisError

KEY_PREFIX = "modelbus:sticky:"


def _key(tenant: str, route: str, session_id: str) -> str:
    return f"{KEY_PREFIX}{tenant}:{route}:{session_id}"


class StickySessions:
    def __init__(self, redis) -> None:
        self.redis = redis

    async def get(self, tenant: str, route: str, session_id: str) -> str | None:
        try:
            raw = await self.redis.get(_key(tenant, route, session_id))
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for sticky sessions: {exc}") from exc
        return raw.decode() if raw is not None else None

    async def remember(
        self, tenant: str, route: str, session_id: str, target: str, ttl_s: int
    ) -> None:
        try:
            await self.redis.set(_key(tenant, route, session_id), target, ex=ttl_s)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for sticky sessions: {exc}") from exc
