"""A request is routed (and charged) once per idempotency key, per tenant.

The key is the request's ``idempotency_key``, else its ``request_id``. :meth:`claim` takes it
with ``SET NX`` before anything is reserved; the value is the claiming request id. After the
tasks were published, :meth:`complete` marks it ``done:<request id>``. A redelivery of the
same request (a crash anywhere before ``complete``) sees its own claim and routes again;
that is safe because budget holds are idempotent by hold id and task ids are deterministic.
A later redelivery sees ``done`` and does nothing. A *different* request re-using the key is
a duplicate. An error response releases the claim, so the caller may try again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import RequestEvent
from redis.exceptions import RedisError

KEY_PREFIX = "modelbus:idem:"

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Claim:
    state: Literal["new", "resume", "done", "duplicate"]
    owner: str  # the request id holding the key


def key_of(request: RequestEvent) -> str:
    return f"{KEY_PREFIX}{request.caller.tenant}:{request.idempotency_key or request.request_id}"


class Idempotency:
    def __init__(self, redis, ttl_s: int = 86_400) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._release = redis.register_script(_RELEASE)

    async def claim(self, request: RequestEvent) -> Claim:
        key, rid = key_of(request), request.request_id
        try:
            if await self.redis.set(key, rid, nx=True, ex=self.ttl_s):
                return Claim("new", rid)
            raw = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for idempotency: {exc}") from exc
        if raw is None:  # released or expired between the two calls: try once more
            return await self.claim(request)
        value = raw.decode()
        if value == rid:
            return Claim("resume", rid)
        if value == f"done:{rid}":
            return Claim("done", rid)
        return Claim("duplicate", value.removeprefix("done:"))

    async def complete(self, request: RequestEvent) -> None:
        try:
            await self.redis.set(key_of(request), f"done:{request.request_id}", xx=True,
                                 keepttl=True)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for idempotency: {exc}") from exc

    async def release(self, request: RequestEvent) -> None:
        try:
            await self._release(keys=[key_of(request)], args=[request.request_id])
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for idempotency: {exc}") from exc
