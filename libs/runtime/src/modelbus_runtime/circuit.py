"""Circuit breakers per provider and model, shared by every replica through Redis.

State machine (per ``(provider, model)``):

* ``closed`` — calls flow. A failure is added to a rolling window (a sorted set of
  timestamps); ``failure_threshold`` failures within ``window_s`` open the circuit.
* ``open`` — calls are refused until ``open_s`` has passed.
* ``half_open`` — the first caller after ``open_s`` is let through as the one probe (a probe
  lease of ``open_s`` stops a second one); its success closes the circuit, its failure opens
  it again for another ``open_s``.

Every transition is one Lua script, so replicas racing on the same target agree; time is
Redis server time (``TIME``), so replicas' clocks do not matter. :meth:`open_targets` reads
many targets in one pipeline for the router.

When Redis fails (timeouts are short, see :func:`modelbus_runtime.redis.build_redis`) the
breaker degrades to an in-process breaker with the same rules, bounded to a fixed number of
targets, which is fed on every call anyway so that it already holds recent history. A Redis
outage therefore never blocks or hangs a call; it only makes the breaker per-replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from typing import Literal

from redis.exceptions import RedisError

from modelbus_runtime.logging import OutageWarning

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
Target = tuple[str, str]

_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local st = redis.call('HMGET', KEYS[1], 'state', 'until', 'probe_until')
local state = st[1] or 'closed'
if state == 'closed' then return 1 end
if state == 'open' and now < tonumber(st[2] or '0') then return 0 end
if state == 'half_open' and now < tonumber(st[3] or '0') then return 0 end
local lease = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', tostring(now + lease))
redis.call('PEXPIRE', KEYS[1], math.ceil((lease + tonumber(ARGV[2])) * 1000))
return 2
"""

_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ok, threshold, window, open_s = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local ttl = math.ceil((open_s * 2 + window + 60) * 1000)
if ok == '1' then
  if state == 'half_open' then redis.call('DEL', KEYS[1], KEYS[2]) return 'closed' end
  return state
end
if state == 'open' then return 'open' end
if state == 'closed' then
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
  if redis.call('ZCARD', KEYS[2]) < threshold then return 'closed' end
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'open', 'until', tostring(now + open_s))
redis.call('HDEL', KEYS[1], 'probe_until')
redis.call('PEXPIRE', KEYS[1], ttl)
return 'open'
"""


class LocalBreaker:
    """The same state machine in process memory: the fallback while Redis is unreachable."""

    def __init__(self, failure_threshold: int, window_s: float, open_s: float,
                 max_targets: int = 4096) -> None:
        self.threshold, self.window_s, self.open_s = failure_threshold, window_s, open_s
        self.max_targets = max_targets
        self._targets: OrderedDict[Target, dict] = OrderedDict()

    def _get(self, target: Target) -> dict:
        entry = self._targets.get(target)
        if entry is None:
            entry = self._targets[target] = {"state": "closed", "failures": [], "until": 0.0,
                                             "probe_until": 0.0}
            while len(self._targets) > self.max_targets:
                self._targets.popitem(last=False)
        else:
            self._targets.move_to_end(target)
        return entry

    def state(self, target: Target, now: float | None = None) -> State:
        now = time.monotonic() if now is None else now
        entry = self._targets.get(target)
        if entry is None:
            return "closed"
        if entry["state"] == "open" and now >= entry["until"]:
            return "half_open"
        return entry["state"]

    def allow(self, target: Target, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        entry = self._get(target)
        if entry["state"] == "closed":
            return True
        if entry["state"] == "open" and now < entry["until"]:
            return False
        if entry["state"] == "half_open" and now < entry["probe_until"]:
            return False
        entry.update(state="half_open", probe_until=now + self.open_s)
        return True

    def record(self, target: Target, ok: bool, now: float | None = None) -> State:
        now = time.monotonic() if now is None else now
        entry = self._get(target)
        if ok:
            if entry["state"] == "half_open":
                entry.update(state="closed", failures=[])
            return entry["state"]
        if entry["state"] == "open":
            return "open"
        if entry["state"] == "closed":
            failures = [t for t in entry["failures"] if t > now - self.window_s] + [now]
            entry["failures"] = failures[-self.threshold:]
            if len(failures) < self.threshold:
                return "closed"
        entry.update(state="open", until=now + self.open_s, failures=[])
        return "open"


class CircuitBreakers:
    """Breakers for every ``(provider, model)``, shared by replicas through Redis."""

    def __init__(self, redis, *, failure_threshold: int = 5, window_s: float = 30.0,
                 open_s: float = 10.0, prefix: str = "mb:cb",
                 closed_cache_s: float = 0.0) -> None:
        self.redis = redis
        self.failure_threshold, self.window_s, self.open_s = failure_threshold, window_s, open_s
        self.prefix = prefix
        self.local = LocalBreaker(failure_threshold, window_s, open_s)
        self._allow = redis.register_script(_ALLOW)
        self._record = redis.register_script(_RECORD)
        # Targets whose last allow() saw "closed": a success there changes nothing, so it
        # is not written to Redis (one round trip per call saved on the hot path).
        self._seen_closed: set[Target] = set()
        # With closed_cache_s > 0, a target seen closed is trusted without a round trip for
        # that long (until this replica records a failure there): a busy worker then asks
        # Redis a few times a second per target instead of once per call, and sees a
        # circuit opened by another replica at most closed_cache_s late.
        self.closed_cache_s = closed_cache_s
        self._closed_until: dict[Target, float] = {}
        self._outage = OutageWarning(log, "circuit breaker store")

    def _keys(self, provider: str, model: str) -> list[str]:
        tag = f"{self.prefix}:{{{provider}/{model}}}"  # one hash slot for both keys
        return [tag, tag + ":f"]

    async def allow(self, provider: str, model: str) -> bool:
        """May a call go to this target now? False while open; in half-open, True only for
        the one probe."""
        target = (provider, model)
        if self.closed_cache_s > 0 and self._closed_until.get(target, 0.0) > time.monotonic():
            return True
        try:
            verdict = int(await self._allow(keys=self._keys(provider, model)[:1],
                                            args=[self.open_s, self.open_s]))
        except (RedisError, OSError) as exc:
            self._outage.warn("using the local breaker", exc)
            self._seen_closed.discard(target)
            return self.local.allow(target)
        if verdict == 1:
            self._seen_closed.add(target)
            if self.closed_cache_s > 0:
                if len(self._closed_until) > 4096:
                    self._closed_until.clear()
                self._closed_until[target] = time.monotonic() + self.closed_cache_s
        else:
            self._seen_closed.discard(target)
        return verdict != 0

    async def record(self, provider: str, model: str, ok: bool) -> None:
        """Record the outcome of a call that :meth:`allow` let through."""
        target = (provider, model)
        self.local.record(target, ok)
        if not ok:
            self._closed_until.pop(target, None)
        if ok and target in self._seen_closed:
            return
        try:
            await self._record(
                keys=self._keys(provider, model),
                args=["1" if ok else "0", self.failure_threshold, self.window_s, self.open_s,
                      uuid.uuid4().hex],
            )
        except (RedisError, OSError) as exc:
            self._outage.warn("outcome kept locally", exc)

    async def state(self, provider: str, model: str) -> State:
        return (await self._states([(provider, model)]))[0]

    async def open_targets(self, targets: list[Target]) -> set[Target]:
        """The targets that refuse calls now (one round trip); half-open ones are not
        included, since a call there is the probe that may close them."""
        states = await self._states(targets)
        return {t for t, s in zip(targets, states, strict=True) if s == "open"}

    async def _states(self, targets: list[Target]) -> list[State]:
        if not targets:
            return []
        try:
            # single commands, not a pipeline block: the service's coalescing client sends
            # them with every other handler's commands of this loop iteration
            (secs, micros), *rows = await asyncio.gather(
                self.redis.time(),
                *(self.redis.hmget(self._keys(provider, model)[0], "state", "until")
                  for provider, model in targets),
            )
        except (RedisError, OSError) as exc:
            self._outage.warn("reporting local state", exc)
            return [self.local.state(t) for t in targets]
        now = secs + micros / 1e6
        out: list[State] = []
        for raw_state, raw_until in rows:
            state = raw_state.decode() if raw_state else "closed"
            if state == "open" and now >= float(raw_until or 0):
                state = "half_open"
            out.append(state)  # type: ignore[arg-type]
        return out
