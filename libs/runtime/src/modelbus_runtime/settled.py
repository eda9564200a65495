"""The settled mark of a request: written by the aggregator once a request's answer is fixed
(quorum reached, deadline passed, cascade satisfied, response chosen), read by the adapter
workers before each provider attempt so that parts still running stop calling providers.

One Redis key per request, named here only (both services import it), by the request's
:func:`~modelbus_schemas.identity.scoped_id` — ``modelbus:settled:{<scope>}`` — with a TTL
longer than any request's lifetime. The mark is an optimisation, never a correctness
condition: it is written only after the response is claimed (stored once, atomically), so a
part that stops on it cannot leave a request unanswered. Redis errors are therefore never
raised: a failed write is logged, a failed read counts as "not settled" (the worst case is
the wasted provider call the mark exists to avoid).
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from modelbus_runtime.logging import OutageWarning

log = logging.getLogger(__name__)

#: How long a settled mark lives: beyond the longest deadline a request may have (600 s).
SETTLED_TTL_S = 3_600

PREFIX = "modelbus:settled"


def settled_key(scope: str) -> str:
    """The Redis key of the settled mark of the request ``scope`` (its scoped id)."""
    return f"{PREFIX}:{{{scope}}}"


class SettledMarks:
    def __init__(self, redis, ttl_s: int = SETTLED_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._outage = OutageWarning(log, "settled marks")

    async def mark(self, scope: str) -> None:
        """Record that the request ``scope`` is settled (idempotent)."""
        try:
            await self.redis.set(settled_key(scope), b"1", ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            self._outage.warn("running parts are not told to stop", exc)

    async def is_settled(self, scope: str) -> bool:
        try:
            return bool(await self.redis.exists(settled_key(scope)))
        except (RedisError, OSError) as exc:
            self._outage.warn("attempts go ahead", exc)
            return False
