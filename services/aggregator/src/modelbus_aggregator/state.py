"""Fan-in state in Redis, keyed by request; survives restarts, rebuilt idempotently.

A request is (tenant, request id): every key below and every member of the deadline index
is its :func:`~modelbus_schemas.identity.scoped_id` (``scope``), never the request id
alone, so two tenants that picked the same request id never read or finish each other's
state. Keys (``{scope}`` is a hash tag, so one request's keys live together):

* ``parts`` — hash ``"<part>:<step>"`` → result. A redelivered result rewrites nothing; an
  ``ok`` result replaces an ``error`` one of the same position (a retried chain stage), never
  the reverse. For chains this hash is the per-stage checkpoint: stage outputs are never
  recomputed.
* ``origin`` — the first step's task (the original request's messages), for chain inputs.
* ``sent`` — ids of the tasks this aggregator published (next tier/stage, judge), set after
  the broker acknowledged them, so a redelivered result does not publish them again.
* ``decided`` — the response chosen for the request, written once by an atomic claim; a
  later handler can only republish this exact response, never a different one.
* ``lease`` — who is publishing the decided response now (expires, so a crash mid-publish
  lets another handler take over); two concurrent handlers never both publish.
* ``done`` — set after the response was published; every later event is ignored.
* ``deadlines`` — one sorted set (scope → due time, epoch ms) scanned by
  :class:`~modelbus_aggregator.deadlines.DeadlineScheduler`, so deadlines survive restarts.

Publish-then-mark: the response id is deterministic, so a crash between publishing and
``done`` republishes the same event (consumers deduplicate by id) rather than losing it.
Redis errors become :class:`TransientInfraError` (the message is retried in place).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Literal

import redis.asyncio as aioredis
from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import BudgetHold, ResponseEvent, ResultEvent, TaskEvent
from modelbus_schemas.identity import scoped_id
from pydantic import BaseModel
from redis.exceptions import RedisError

STATE_TTL_S = 24 * 3600

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if (not cur) or (string.sub(cur, 1, 1) == 'e' and string.sub(ARGV[2], 1, 1) == 'o') then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4], 'NX', 'EX', ARGV[3]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[5], 'NX', ARGV[5], ARGV[6]) end
local origin = false
if ARGV[7] == '1' then origin = redis.call('GET', KEYS[4]) end
return {0, redis.call('EXISTS', KEYS[3]), redis.call('HGETALL', KEYS[2]), origin}
"""

# finishing and marking are scripts, not MULTI blocks: still atomic, and a single command, so
# the service's client sends those of concurrent requests in one round trip
_FINISH = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[7], ARGV[2])
return 1
"""

_MARK_SENT = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'done'} end
local decided = redis.call('GET', KEYS[2])
if not decided then
  if ARGV[1] == '' then return {'none'} end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
  return {'claimed', ARGV[1]}
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'takeover', decided} end
return {'busy'}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Position = tuple[int, int]  # (part_id, step)


class Decision(BaseModel):
    """The stored, final answer of a request and what is settled after publishing it."""

    reply_to: str
    response: ResponseEvent
    budget_hold: BudgetHold | None = None
    cache_key: str | None = None
    decided_at_ms: int | None = None  # where a takeover starts reading back the reply topic
    guard_record: bool | None = None  # False: the router stored no guard record to review


@dataclass
class Snapshot:
    done: bool = False
    decided: bool = False
    results: dict[Position, ResultEvent] = field(default_factory=dict)
    origin: TaskEvent | None = None


@dataclass
class Claim:
    state: Literal["claimed", "takeover", "busy", "done", "none"]
    decision: Decision | None = None
    token: str = ""


def _redis_errors(fn: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    @wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except RedisError as exc:
            raise TransientInfraError(f"redis unavailable: {exc.__class__.__name__}") from exc
    return wrapper


class FanInStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "modelbus:agg",
                 lease_ms: int = 10_000) -> None:
        self.redis = client
        self.prefix = prefix
        self.lease_ms = lease_ms
        self.deadlines_key = f"{prefix}:deadlines"
        # told the due time of every deadline stored here (the timer wakes for it)
        self.on_scheduled: Callable[[int], None] | None = None
        self._record = client.register_script(_RECORD)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._finish = client.register_script(_FINISH)
        self._mark_sent = client.register_script(_MARK_SENT)

    def _key(self, kind: str, scope: str) -> str:
        return f"{self.prefix}:{kind}:{{{scope}}}"

    @_redis_errors
    async def record(self, result: ResultEvent, *, deadline_ms: int | None = None,
                     keep_origin: bool = False, want_origin: bool = False) -> Snapshot:
        """Store a result (idempotently) and return the request's state after it."""
        rid = scoped_id(result.tenant, result.request_id)
        value = ("o" if result.status == "ok" else "e") + result.model_dump_json(exclude_none=True)
        origin = ""
        if keep_origin and result.origin is not None:
            origin = result.origin.model_dump_json(exclude_none=True)
        reply = await self._record(
            keys=[self._key("done", rid), self._key("parts", rid), self._key("decided", rid),
                  self._key("origin", rid), self.deadlines_key],
            args=[f"{result.part_id}:{result.plan.step}", value, STATE_TTL_S, origin,
                  "" if deadline_ms is None else deadline_ms, rid, "1" if want_origin else ""],
        )
        if deadline_ms is not None and self.on_scheduled is not None:
            self.on_scheduled(deadline_ms)
        if reply[0] == 1:
            return Snapshot(done=True)
        return Snapshot(decided=bool(reply[1]), results=_parse_parts(reply[2]),
                        origin=_parse_origin(reply[3] if len(reply) > 3 else None))

    @_redis_errors
    async def load(self, scope: str) -> Snapshot:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._key("done", scope))
            pipe.exists(self._key("decided", scope))
            pipe.hgetall(self._key("parts", scope))
            pipe.get(self._key("origin", scope))
            done, decided, parts, origin = await pipe.execute()
        if done:
            return Snapshot(done=True)
        flat = [x for kv in parts.items() for x in kv]
        return Snapshot(decided=bool(decided), results=_parse_parts(flat),
                        origin=_parse_origin(origin))

    @_redis_errors
    async def claim(self, scope: str, decision: Decision | None) -> Claim:
        """Decide once: store ``decision`` unless one exists, and take the publish lease."""
        token = uuid.uuid4().hex
        if decision is not None and decision.decided_at_ms is None:
            decision = decision.model_copy(update={"decided_at_ms": int(time.time() * 1000)})
        body = decision.model_dump_json(exclude_none=True) if decision else ""
        reply = await self._claim(
            keys=[self._key("done", scope), self._key("decided", scope),
                  self._key("lease", scope)],
            args=[body, token, self.lease_ms, STATE_TTL_S],
        )
        state = reply[0].decode()
        stored = Decision.model_validate_json(reply[1]) if len(reply) > 1 else None
        return Claim(state, stored, token)  # type: ignore[arg-type]

    @_redis_errors
    async def release(self, scope: str, token: str) -> None:
        await self._release(keys=[self._key("lease", scope)], args=[token])

    @_redis_errors
    async def finish(self, scope: str) -> None:
        """Mark the request answered and drop its working state."""
        await self._finish(
            keys=[self._key("done", scope),
                  *(self._key(k, scope)
                    for k in ("parts", "decided", "lease", "sent", "origin")),
                  self.deadlines_key],
            args=[STATE_TTL_S, scope],
        )

    @_redis_errors
    async def was_sent(self, scope: str, event_id: str) -> bool:
        return bool(await self.redis.sismember(self._key("sent", scope), event_id))

    @_redis_errors
    async def mark_sent(self, scope: str, event_id: str) -> None:
        await self._mark_sent(keys=[self._key("sent", scope)],
                              args=[event_id, STATE_TTL_S])

    @_redis_errors
    async def schedule(self, scope: str, due_ms: int) -> None:
        await self.redis.zadd(self.deadlines_key, {scope: due_ms}, nx=True)
        if self.on_scheduled is not None:
            self.on_scheduled(due_ms)

    @_redis_errors
    async def due(self, now_ms: int, limit: int = 100) -> list[str]:
        raw = await self.redis.zrangebyscore(self.deadlines_key, "-inf", now_ms, 0, limit)
        return [r.decode() for r in raw]

    @_redis_errors
    async def due_and_next(self, now_ms: int, limit: int = 100) -> tuple[list[str], int | None]:
        """The deadlines due at ``now_ms`` (up to ``limit``) and the earliest stored due
        time (None: no deadline stored), in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self.deadlines_key, "-inf", now_ms, 0, limit)
            pipe.zrange(self.deadlines_key, 0, 0, withscores=True)
            raw, first = await pipe.execute()
        return [r.decode() for r in raw], (int(first[0][1]) if first else None)

    @_redis_errors
    async def forget_deadline(self, scope: str) -> None:
        await self.redis.zrem(self.deadlines_key, scope)


def _parse_parts(flat: list) -> dict[Position, ResultEvent]:
    out: dict[Position, ResultEvent] = {}
    for i in range(0, len(flat), 2):
        part, step = (int(x) for x in flat[i].decode().split(":"))
        out[(part, step)] = ResultEvent.model_validate_json(flat[i + 1][1:])
    return out


def _parse_origin(raw: bytes | None) -> TaskEvent | None:
    return TaskEvent.model_validate_json(raw) if raw else None
