"""``Idempotency-Key``: the same key (per tenant) maps to the same request id, in Redis.

* :meth:`IdempotencyStore.claim` takes the key with ``SET NX`` (value: request id and a
  fingerprint of the call) or returns the request id already holding it. A key re-used for
  a *different* call is refused (409), as a retry must repeat its call.
* The response of an idempotent call is kept under its (tenant, request id) —
  :func:`~modelbus_schemas.identity.scoped_id` — (:meth:`store`), so a retry after
  completion gets the same response, from any gateway instance, and never another
  tenant's. Keys are built from ``scoped_id`` too (tenant + the key's digest).
* An error response releases the key (as the router releases its own claim), so a later
  retry is a new attempt; the response stays stored for a retry that already waits on it.

Redis down → :class:`IdempotencyUnavailable` (the gateway answers 503; nothing is sent).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from modelbus_schemas import DecodeError, ResponseEvent, decode, encode
from modelbus_schemas.identity import scoped_id
from redis.exceptions import RedisError

KEY_PREFIX = "modelbus:gw:idem:"
RESPONSE_PREFIX = "modelbus:gw:resp:"

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class IdempotencyUnavailable(Exception):
    pass


class KeyReused(Exception):
    """The key already belongs to a different call."""


@dataclass(frozen=True)
class Claimed:
    request_id: str
    new: bool


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class IdempotencyStore:
    def __init__(self, redis, ttl_s: int = 86_400) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._release = redis.register_script(_RELEASE)

    @staticmethod
    def _key(tenant: str, key: str) -> str:
        return KEY_PREFIX + scoped_id(tenant, hashlib.sha256(key.encode()).hexdigest())

    async def claim(self, tenant: str, key: str, call: str, request_id: str) -> Claimed:
        """Take ``key`` for ``request_id``, or return the request id that holds it."""
        redis_key, value = self._key(tenant, key), f"{request_id} {call}"
        try:
            for _ in range(3):  # released between SET and GET: try again
                if await self.redis.set(redis_key, value, nx=True, ex=self.ttl_s):
                    return Claimed(request_id, True)
                raw = await self.redis.get(redis_key)
                if raw is not None:
                    owner, _, owner_call = raw.decode().partition(" ")
                    if owner_call != call:
                        raise KeyReused("this Idempotency-Key was used for a different request")
                    return Claimed(owner, False)
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable(str(exc)) from exc
        raise IdempotencyUnavailable("idempotency key kept changing")

    async def release(self, tenant: str, key: str, call: str, request_id: str) -> None:
        try:
            await self._release(keys=[self._key(tenant, key)], args=[f"{request_id} {call}"])
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable(str(exc)) from exc

    async def store(self, response: ResponseEvent) -> None:
        try:
            await self.redis.set(RESPONSE_PREFIX + scoped_id(response.tenant,
                                                             response.request_id),
                                 encode(response), ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable(str(exc)) from exc

    async def stored(self, tenant: str, request_id: str) -> ResponseEvent | None:
        try:
            raw = await self.redis.get(RESPONSE_PREFIX + scoped_id(tenant, request_id))
        except (RedisError, OSError) as exc:
            raise IdempotencyUnavailable(str(exc)) from exc
        if raw is None:
            return None
        try:
            return decode(ResponseEvent, raw)
        except DecodeError:
            return None
