"""Rate limits (requests/min and tokens/min) shared by every replica, atomic in Redis.

The algorithm is GCRA (the generic cell rate algorithm, a leaky bucket kept as one
timestamp per limit): each limit stores its "theoretical arrival time" (TAT). A call costing
``c`` units under a rate of ``r`` units/min is admitted when ``TAT - now <= burst_s``, and
moves ``TAT`` to ``max(TAT, now) + c * 60 / r``. Over any window of ``T`` seconds at most
``r * (T + burst_s) / 60`` units plus one call are admitted, by every replica together.

Both limits of a scope are checked and charged in one Lua script with Redis server time, so
replicas never race and their clocks do not matter. A refused call is not charged; the
caller learns how long to wait. Tokens are charged up front from an estimate and corrected
with :meth:`RateLimiter.settle` once the provider reports the real usage.

When Redis is unreachable the limiter degrades to the same algorithm in process memory
(each replica then enforces the full rate on its own): a Redis outage never blocks calls.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from modelbus_runtime.logging import OutageWarning

log = logging.getLogger(__name__)

# KEYS: one per limit. ARGV: per limit, (seconds per unit, units charged, burst seconds).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait, tats = 0, {}
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local w = tat - now - tonumber(ARGV[(i - 1) * 3 + 3])
  if w > wait then wait = w end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  local new = tats[i] + tonumber(ARGV[(i - 1) * 3 + 1]) * tonumber(ARGV[(i - 1) * 3 + 2])
  redis.call('SET', KEYS[i], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
end
return '0'
"""

# KEYS[1]: the token limit. ARGV: seconds per unit, units to add (may be negative).
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if new <= now then redis.call('DEL', KEYS[1]) return '0' end
redis.call('SET', KEYS[1], tostring(new), 'PX', math.ceil((new - now) * 1000) + 1000)
return '0'
"""


@dataclass(frozen=True)
class RateLimit:
    """Limits of one scope (e.g. a provider); 0 means unlimited."""

    requests_per_min: int = 0
    tokens_per_min: int = 0
    burst_s: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.requests_per_min > 0 or self.tokens_per_min > 0


class _LocalGcra:
    def __init__(self) -> None:
        self.tats: dict[str, float] = {}

    def acquire(self, specs: list[tuple[str, float, float, float]]) -> float:
        now = time.monotonic()
        wait = max((max(self.tats.get(k, now), now) - now - burst for k, _, _, burst in specs),
                   default=0.0)
        if wait > 0:
            return wait
        for key, per_unit, units, _ in specs:
            self.tats[key] = max(self.tats.get(key, now), now) + per_unit * units
        return 0.0

    def settle(self, key: str, per_unit: float, units: float) -> None:
        now = time.monotonic()
        self.tats[key] = max(max(self.tats.get(key, now), now) + per_unit * units, now)


class RateLimiter:
    """The requests/min and tokens/min limits of one scope, shared through Redis."""

    def __init__(self, redis, scope: str, limit: RateLimit, *, prefix: str = "mb:rl") -> None:
        self.redis = redis
        self.scope = scope
        self.limit = limit
        self._rpm_key = f"{prefix}:{{{scope}}}:rpm"
        self._tpm_key = f"{prefix}:{{{scope}}}:tpm"
        self._acquire = redis.register_script(_ACQUIRE)
        self._settle = redis.register_script(_SETTLE)
        self._local = _LocalGcra()
        self._outage = OutageWarning(log, "rate limit store")

    def _specs(self, tokens: int) -> list[tuple[str, float, float, float]]:
        specs = []
        if self.limit.requests_per_min > 0:
            specs.append((self._rpm_key, 60.0 / self.limit.requests_per_min, 1,
                          self.limit.burst_s))
        if self.limit.tokens_per_min > 0:
            specs.append((self._tpm_key, 60.0 / self.limit.tokens_per_min, max(0, tokens),
                          self.limit.burst_s))
        return specs

    async def try_acquire(self, tokens: int = 0) -> float:
        """Charge one request of ``tokens`` estimated tokens if both limits allow it now.
        Returns 0.0 when admitted, else the seconds to wait before trying again (nothing
        is charged then)."""
        specs = self._specs(tokens)
        if not specs:
            return 0.0
        args: list = []
        for _, per_unit, units, burst in specs:
            args += [repr(per_unit), units, repr(burst)]
        try:
            wait = await self._acquire(keys=[s[0] for s in specs], args=args)
        except (RedisError, OSError) as exc:
            self._outage.warn("limiting locally", exc)
            return self._local.acquire(specs)
        return float(wait)

    async def acquire(self, tokens: int = 0, *, timeout_s: float | None = None) -> bool:
        """Wait until admitted; False when admission would take longer than ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = await self.try_acquire(tokens)
            if wait <= 0:
                return True
            # Small jitter so that waiters of many replicas do not retry in lockstep.
            wait += random.uniform(0, min(0.05, wait))
            if deadline is not None and time.monotonic() + wait > deadline:
                return False
            await asyncio.sleep(wait)

    async def settle(self, tokens_delta: int) -> None:
        """Correct the token charge once the real usage is known (negative gives back)."""
        if self.limit.tokens_per_min <= 0 or tokens_delta == 0:
            return
        per_unit = 60.0 / self.limit.tokens_per_min
        try:
            await self._settle(keys=[self._tpm_key], args=[repr(per_unit), tokens_delta])
        except (RedisError, OSError):
            self._local.settle(self._tpm_key, per_unit, tokens_delta)
