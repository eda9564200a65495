"""Who may call, and how often: API key → caller, a rate limit per key and a throttle on
failed authentication per client address, both shared by every replica through Redis.

Both limits are the runtime's GCRA limiter (:mod:`modelbus_runtime.ratelimit`), so they hold
for all replicas together, use Redis server time, and degrade to a per-replica limit when
Redis is unreachable (a Redis outage never blocks calls):

* **per key**: ``key_requests_per_min`` calls per minute (an entry's ``requests_per_min``
  overrides it), with ``key_burst`` calls at once on top; an exceeded key gets 429 with
  ``Retry-After`` (the seconds until its next call is admitted) and is not charged.
* **failed authentication per client address**: the failures are the limiter's units. A
  call first checks the address at no cost; a missing or unknown key is charged after the
  fact. Past ``auth_failure_burst`` failures at once (then ``auth_failures_per_min``), every
  call from the address gets 429 — valid keys too, so the throttle also slows a search for
  a valid key. A call with a valid key checks its address only when this replica has seen
  a failure from it for as long as a throttle can last (one Redis round trip saved on
  every ordinary call); a brute-force search fails on every replica it reaches, so each
  one checks. The address is the TCP peer; behind a proxy, uvicorn takes it from
  ``X-Forwarded-For`` only for peers listed in ``FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from modelbus_runtime.ratelimit import RateLimit, RateLimiter

from modelbus_gateway.auth import ApiKeys, KeyMatch, bearer_token
from modelbus_gateway.errors import rate_limited, unauthorized
from modelbus_gateway.metrics import REFUSED

#: client addresses that failed to authenticate whose limiter is kept (its Redis keys name
#: it; its in-process state is what limits when Redis is unreachable)
ADDRESSES_KEPT = 10_000


def _limit(per_min: int, burst: int, *, failures: bool = False) -> RateLimit:
    """``burst`` units at once on top of ``per_min`` a minute (GCRA's burst in seconds)."""
    burst_s = burst * 60.0 / per_min
    if failures:  # failures are charged after the fact, as "tokens" of the limiter
        return RateLimit(tokens_per_min=per_min, burst_s=burst_s)
    return RateLimit(requests_per_min=per_min, burst_s=burst_s)


class Admission:
    def __init__(self, redis, keys: ApiKeys, *, key_requests_per_min: int, key_burst: int,
                 auth_failures_per_min: int, auth_failure_burst: int,
                 prefix: str = "mb:gw") -> None:
        self.redis = redis
        self.prefix = prefix
        self.keys = keys
        self.key_rpm = key_requests_per_min
        self.key_burst = key_burst
        self.failure_limit = (_limit(auth_failures_per_min, auth_failure_burst, failures=True)
                              if auth_failures_per_min > 0 else None)
        # how long after its last failure an address can stay throttled
        self.suspect_s = (self.failure_limit.burst_s + 60 / auth_failures_per_min + 1
                          if self.failure_limit else 0.0)
        self._key_limiters: dict[str, RateLimiter | None] = {}  # one per configured key
        # address → (its limiter, when it last failed here)
        self._addresses: OrderedDict[str, tuple[RateLimiter, float]] = OrderedDict()

    async def admit(self, authorization: str | None, address: str | None) -> KeyMatch:
        """The caller of an ``Authorization`` header from ``address``, or a 401/429
        :class:`GatewayError`."""
        token = bearer_token(authorization)
        match = self.keys.lookup(token)
        failures = self._failures(address, failing=match is None)
        if failures is not None and (wait := await failures.try_acquire(0)) > 0:
            REFUSED.labels("auth_throttled").inc()
            raise rate_limited("Too many failed authentications from this address; retry "
                               "later", wait, "auth_throttled")
        if match is None:
            if failures is not None:
                await failures.settle(1)
            raise unauthorized("Incorrect API key provided" if token else
                               "You didn't provide an API key: send 'Authorization: Bearer <key>'")
        limiter = self._key_limiter(match)
        if limiter is not None and (wait := await limiter.try_acquire()) > 0:
            REFUSED.labels("key_rate_limited").inc()
            raise rate_limited(f"Rate limit reached for API key {match.key_id}: "
                               f"{limiter.limit.requests_per_min} requests per minute", wait)
        return match

    def _failures(self, address: str | None, *, failing: bool) -> RateLimiter | None:
        """The failure limiter of ``address`` when the call must check it: always for a call
        that fails to authenticate, else only for an address that failed here lately."""
        if self.failure_limit is None or not address:
            return None
        now = time.monotonic()
        known = self._addresses.get(address)
        if not failing:
            return known[0] if known and now - known[1] < self.suspect_s else None
        limiter = known[0] if known else RateLimiter(
            self.redis, f"authfail:{address}", self.failure_limit, prefix=self.prefix)
        self._addresses[address] = (limiter, now)
        self._addresses.move_to_end(address)
        if len(self._addresses) > ADDRESSES_KEPT:
            self._addresses.popitem(last=False)
        return limiter

    def _key_limiter(self, match: KeyMatch) -> RateLimiter | None:
        if match.key_id not in self._key_limiters:
            rpm = self.key_rpm if match.requests_per_min is None else match.requests_per_min
            self._key_limiters[match.key_id] = (
                RateLimiter(self.redis, f"key:{match.key_id}", _limit(rpm, self.key_burst),
                            prefix=self.prefix) if rpm > 0 else None)
        return self._key_limiters[match.key_id]


