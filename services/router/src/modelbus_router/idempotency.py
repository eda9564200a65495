"""A request is routed (and charged) once: per request id and per idempotency key, per tenant.

Identity is (tenant, request id) (:func:`modelbus_schemas.identity.scoped_id`); an
idempotency key is the caller's too, scoped the same way. Two claims are taken in one Lua
script before anything is reserved:

* ``modelbus:idem:req:<scoped request id>`` — the request id: a tenant reusing it for other
  content would get the first request's task and response ids, so that is a duplicate;
* ``modelbus:idem:key:<scoped idempotency key>`` — only when the request has an
  ``idempotency_key``: another request id with the same key is a duplicate.

The value of a claim is ``<content fingerprint>:<request id>`` (``done:`` in front once the
tasks were published by :meth:`Idempotency.complete`). The fingerprint is a hash of the
request's content (everything but ``created_at``), so a redelivery of the same request —
the same record again, or the upstream re-sending it — is recognised as itself: before
``complete`` it routes again (safe: budget holds are idempotent by hold id, task ids are
deterministic), after it nothing happens. A request whose claims are held by other content
gets a ``duplicate_request`` error naming only its own request id and key. An error response
releases the claims (only those still holding this request's value), so the caller may try
again later.

Tenants never meet here: tenant ``acme:x`` with key ``K77`` and tenant ``acme`` with key
``x:K77`` are ``6:acme:x:K77`` and ``4:acme:x:K77``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import RequestEvent
from modelbus_schemas.identity import scoped_id
from redis.exceptions import RedisError

KEY_PREFIX = "modelbus:idem:"

# KEYS: the claims (request id, then the idempotency key if any). ARGV[1] the value,
# ARGV[2] the TTL. Returns {state, index of the conflicting claim (0: none)}.
_CLAIM = """
local mine, done = ARGV[1], 'done:' .. ARGV[1]
local state = 'new'
for i, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if held then
    if held == done then state = 'done'
    elseif held == mine then if state ~= 'done' then state = 'resume' end
    else return {'duplicate', i} end
  end
end
if state ~= 'done' then
  for _, key in ipairs(KEYS) do redis.call('SET', key, mine, 'NX', 'EX', ARGV[2]) end
end
return {state, 0}
"""

_COMPLETE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('SET', key, 'done:' .. ARGV[1], 'KEEPTTL') end
end
return 0
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    state: Literal["new", "resume", "done", "duplicate"]
    conflict: Literal["request_id", "idempotency_key"] | None = None

    def message(self, request: RequestEvent) -> str:
        """The caller-facing words of a duplicate: only the caller's own ids."""
        if self.conflict == "idempotency_key":
            return (f"duplicate request: idempotency key {request.idempotency_key!r} was "
                    "already used by another request of this tenant")
        return (f"duplicate request: request id {request.request_id!r} was already used by "
                "this tenant for a request with other content")


def fingerprint(request: RequestEvent) -> str:
    """A hash of what the request asks (``created_at`` aside: a re-send is the same)."""
    body = request.model_dump_json(exclude={"created_at"})
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def claim_keys(request: RequestEvent) -> list[str]:
    tenant = request.caller.tenant
    keys = [f"{KEY_PREFIX}req:{scoped_id(tenant, request.request_id)}"]
    if request.idempotency_key is not None:
        keys.append(f"{KEY_PREFIX}key:{scoped_id(tenant, request.idempotency_key)}")
    return keys


def claim_value(request: RequestEvent) -> str:
    return f"{fingerprint(request)}:{request.request_id}"


class Idempotency:
    def __init__(self, redis, ttl_s: int = 86_400) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, request: RequestEvent) -> Claim:
        try:
            state, index = await self._claim(keys=claim_keys(request),
                                             args=[claim_value(request), self.ttl_s])
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for idempotency: {exc}") from exc
        state = state.decode() if isinstance(state, bytes) else state
        if state == "duplicate":
            return Claim("duplicate", "request_id" if int(index) == 1 else "idempotency_key")
        return Claim(state)

    async def complete(self, request: RequestEvent) -> None:
        await self._run(self._complete, request)

    async def release(self, request: RequestEvent) -> None:
        await self._run(self._release, request)

    async def _run(self, script, request: RequestEvent) -> None:
        try:
            await script(keys=claim_keys(request), args=[claim_value(request)])
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for idempotency: {exc}") from exc
