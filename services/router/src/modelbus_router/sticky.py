"""Sticky sessions for the weighted strategy: a session keeps the target it was given.

Keyed by route and (tenant, ``session_id``) encoded with
:func:`~modelbus_schemas.identity.scoped_id`, so two tenants' sessions never share a key;
each use refreshes the TTL. A remembered target
that is no longer eligible is simply not honoured (the strategy draws again and the new
target is remembered instead).

Assignment is atomic (:meth:`StickySessions.assign`): concurrent first requests of a session
each draw a target, the first to set the key wins (SET NX semantics, in one Lua script that
also returns the winner and refreshes the TTL), and the others are routed again to the
winner — a session is never split over two models. A stale target is replaced only if it is
still the one the request read (compare-and-set), so racers that all saw it agree too.
"""

from __future__ import annotations

from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas.identity import scoped_id
from redis.exceptions import RedisError

KEY_PREFIX = "modelbus:sticky:"


def _key(tenant: str, route: str, session_id: str) -> str:
    return f"{KEY_PREFIX}{route}:{scoped_id(tenant, session_id)}"  # a route has no ":"


# KEYS[1] the session; ARGV: candidate, ttl, the stale target the caller read ("" if none)
_ASSIGN = """
local current = redis.call('GET', KEYS[1])
if (not current) or (ARGV[3] ~= '' and current == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return ARGV[1]
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return current
"""


class StickySessions:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._assign = redis.register_script(_ASSIGN)

    async def get(self, tenant: str, route: str, session_id: str) -> str | None:
        try:
            raw = await self.redis.get(_key(tenant, route, session_id))
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for sticky sessions: {exc}") from exc
        return raw.decode() if raw is not None else None

    async def assign(self, tenant: str, route: str, session_id: str, target: str, ttl_s: int,
                     stale: str | None = None) -> str:
        """Give the session ``target`` unless it already has one (other than ``stale``, the
        ineligible target this request read); return the session's target — the winner."""
        try:
            raw = await self._assign(keys=[_key(tenant, route, session_id)],
                                     args=[target, ttl_s, stale or ""])
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for sticky sessions: {exc}") from exc
        return raw.decode() if isinstance(raw, bytes) else str(raw)
