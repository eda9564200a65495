"""Request quotas per team: fixed windows (minute, hour, day) counted in Redis.

One Lua script per quota admits or refuses a request atomically and remembers its verdict
under the request's scoped id (:func:`~modelbus_schemas.identity.scoped_id`: tenant and
request id), so a redelivered request gets the same verdict and is counted once. Counters
are keyed by (tenant, team), encoded the same unambiguous way.
Refused requests do not consume the quota.
"""

from __future__ import annotations

import time

from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import RequestEvent
from modelbus_schemas.identity import scoped_id
from redis.exceptions import RedisError

from modelbus_router.policy import QuotaSpec

KEY_PREFIX = "modelbus:quota:"
WINDOW_S = {"minute": 60, "hour": 3600, "day": 86400}

_ADMIT = """
local seen = redis.call('GET', KEYS[1])
if seen then return tonumber(seen) end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
local ok = 1
if n > tonumber(ARGV[1]) then ok = 0; redis.call('DECR', KEYS[2]) end
redis.call('SET', KEYS[1], ok, 'EX', ARGV[2])
return ok
"""


class QuotaExceeded(Exception):
    pass


def applicable(quotas: list[QuotaSpec], team: str | None) -> list[QuotaSpec]:
    if team is None:
        return []
    return [q for q in quotas if q.team in ("*", team)]


class Quotas:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._admit = redis.register_script(_ADMIT)

    async def admit(self, quotas: list[QuotaSpec], request: RequestEvent) -> None:
        """Count the request against every quota of its team, or raise :class:`QuotaExceeded`."""
        caller = request.caller
        for quota in applicable(quotas, caller.team):
            window = WINDOW_S[quota.per]
            slot = int(time.time()) // window
            scope = scoped_id(caller.tenant, caller.team)
            keys = [f"{KEY_PREFIX}seen:{quota.per}:{scoped_id(scope, request.request_id)}",
                    f"{KEY_PREFIX}{quota.per}:{scope}:{slot}"]
            try:
                ok = await self._admit(keys=keys, args=[quota.max_requests, window])
            except (RedisError, OSError) as exc:
                raise TransientInfraError(f"redis unavailable for quotas: {exc}") from exc
            if not int(ok):
                raise QuotaExceeded(
                    f"quota exceeded: team {caller.team!r} may send {quota.max_requests} "
                    f"requests per {quota.per}"
                )
