"""Spend budgets per scope (team, tenant) and period: reserve before dispatch, settle after.

The router calls :meth:`Budgets.reserve` with the estimated cost of a plan before it
publishes any task; the aggregator calls :meth:`Budgets.settle` with the actual cost once the
request is answered (0 for a failed request, which releases the reservation).

Why it cannot overspend: one Lua script checks every scope's committed amount (reserved +
settled) against its limit and adds the reservation to all of them, atomically. N concurrent
reservations therefore never commit more than the limit; only a settle whose actual cost
exceeds its reservation can push a scope past it, by at most that difference.

Amounts are integer micro-dollars in Redis (``INCRBY``), so no float drift accumulates.
Both calls are idempotent by ``hold_id``: a reservation repeated after a crash (the request
redelivered) returns the existing hold without charging again, and a settle repeated by a
redelivered result changes nothing. Counters expire a day after their period ends; holds
after ``hold_ttl_s``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from modelbus_schemas.plan import BudgetHold
from redis.exceptions import RedisError

from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.metrics import BUDGET_REMAINING

Period = Literal["hour", "day", "month"]
KEY_PREFIX = "modelbus:budget:"
MICROS = 1_000_000

_RESERVE = """
local hold = KEYS[1]
local amount = tonumber(ARGV[1])
if redis.call('EXISTS', hold) == 1 then
  return {1, tonumber(redis.call('HGET', hold, 'amount')), 0}
end
for i = 2, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + amount > tonumber(ARGV[i * 2 - 1]) then
    return {0, i - 1, current}
  end
end
local keys = {}
local remaining = {}
for i = 2, #KEYS do
  local now = redis.call('INCRBY', KEYS[i], amount)
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[i * 2]))
  keys[#keys + 1] = KEYS[i]
  remaining[#remaining + 1] = tonumber(ARGV[i * 2 - 1]) - now
end
redis.call('HSET', hold, 'amount', amount, 'keys', table.concat(keys, '\\n'), 'settled', 0)
redis.call('EXPIRE', hold, tonumber(ARGV[2]))
return {1, amount, 1, remaining}
"""

_SETTLE = """
local hold = KEYS[1]
local data = redis.call('HMGET', hold, 'amount', 'keys', 'settled')
if not data[1] then return -1 end
if data[3] == '1' then return 0 end
local delta = tonumber(ARGV[1]) - tonumber(data[1])
for key in string.gmatch(data[2], '[^\\n]+') do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, delta) end
end
redis.call('HSET', hold, 'settled', 1, 'actual', ARGV[1])
return 1
"""


@dataclass(frozen=True)
class BudgetLimit:
    """A limit on one scope (``tenant:acme``, ``team:acme/support``) over one period."""

    scope: str
    period: Period
    limit_usd: float


class BudgetExceeded(Exception):
    """The reservation would take a scope past its limit; nothing was reserved."""

    def __init__(self, limit: BudgetLimit, committed_usd: float, requested_usd: float) -> None:
        super().__init__(
            f"budget exceeded for {limit.scope} ({limit.period}): {committed_usd:.6f} of "
            f"{limit.limit_usd:.6f} USD committed, this request needs {requested_usd:.6f} USD"
        )
        self.limit = limit
        self.committed_usd = committed_usd
        self.requested_usd = requested_usd


def to_micros(usd: float) -> int:
    return max(0, round(usd * MICROS))


def period_id(period: Period, now: datetime) -> str:
    return now.strftime({"hour": "%Y%m%d%H", "day": "%Y%m%d", "month": "%Y%m"}[period])


def period_ttl_s(period: Period, now: datetime) -> int:
    """Seconds until the period ends, plus a day so late settles still find the counter."""
    seconds_in = {"hour": 3600, "day": 86400}
    if period == "month":
        days = calendar.monthrange(now.year, now.month)[1]
        length = days * 86400
        elapsed = (now.day - 1) * 86400 + now.hour * 3600 + now.minute * 60 + now.second
    else:
        length = seconds_in[period]
        elapsed = (now.minute * 60 + now.second) + (now.hour * 3600 if period == "day" else 0)
    return max(1, length - elapsed) + 86400


class Budgets:
    def __init__(self, redis, *, hold_ttl_s: int = 3 * 86400) -> None:
        self.redis = redis
        self.hold_ttl_s = hold_ttl_s
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    @staticmethod
    def counter_key(limit: BudgetLimit, now: datetime) -> str:
        return f"{KEY_PREFIX}{limit.scope}:{limit.period}:{period_id(limit.period, now)}"

    async def reserve(
        self,
        hold_id: str,
        limits: list[BudgetLimit],
        amount_usd: float,
        now: datetime | None = None,
    ) -> BudgetHold:
        """Reserve ``amount_usd`` on every limit at once, or raise :class:`BudgetExceeded`."""
        now = now or datetime.now(UTC)
        amount = to_micros(amount_usd)
        keys = [KEY_PREFIX + "hold:" + hold_id]
        args: list[int] = [amount, self.hold_ttl_s]
        for limit in limits:
            keys.append(self.counter_key(limit, now))
            args += [to_micros(limit.limit_usd), period_ttl_s(limit.period, now)]
        try:
            ok, value, extra, *rest = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for budgets: {exc}") from exc
        if not ok:
            failed = limits[int(value) - 1]
            BUDGET_REMAINING.labels(failed.scope, failed.period).set(
                (to_micros(failed.limit_usd) - int(extra)) / MICROS)
            raise BudgetExceeded(failed, int(extra) / MICROS, amount_usd)
        for limit, left in zip(limits, rest[0] if rest else [], strict=False):
            BUDGET_REMAINING.labels(limit.scope, limit.period).set(int(left) / MICROS)
        scope = ",".join(f"{lim.scope}:{lim.period}" for lim in limits) or "none"
        return BudgetHold(hold_id=hold_id, scope=scope, reserved_usd=int(value) / MICROS)

    async def settle(self, hold: BudgetHold, actual_usd: float) -> bool:
        """Replace the reservation by the actual cost; True the first time, False after
        (already settled, or the hold expired)."""
        try:
            done = await self._settle(
                keys=[KEY_PREFIX + "hold:" + hold.hold_id], args=[to_micros(actual_usd)]
            )
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for budgets: {exc}") from exc
        return int(done) == 1

    async def committed_usd(self, limit: BudgetLimit, now: datetime | None = None) -> float:
        """Reserved plus settled spend of a scope in the current period."""
        try:
            raw = await self.redis.get(self.counter_key(limit, now or datetime.now(UTC)))
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for budgets: {exc}") from exc
        return int(raw or 0) / MICROS
