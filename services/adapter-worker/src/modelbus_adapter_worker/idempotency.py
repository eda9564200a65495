"""The idempotency store: what a task produced, kept in Redis by the task's position id.

The key is :func:`~modelbus_adapter_worker.outcome.position_id`: the task's
(tenant, request id, part, step, hop), so two tenants that picked the same request id keep
separate outputs and neither is ever answered with the other's result. It is derived from
the task's fields, not taken from the ``event_id`` it was sent with.

A task is answered once: its output (the result, or the task forwarded to a fallback) is
saved before it is published, and a redelivered task — after a crash, a rebalance, a
redrive — gets the saved output republished instead of a second provider call. Entries
expire after ``ttl_s`` (longer than any redelivery window). Reads and writes of concurrent
tasks share round trips (:class:`modelbus_runtime.redis.CoalescingRedis`).

It also keeps a task's "stream started" mark (same key, its own prefix, same expiry): set
before a streamed task's first delta leaves, so a redelivered task whose stream had begun
but whose output was never saved is answered ``stream_interrupted`` instead of calling the
provider again (the caller already saw part of an answer).

If Redis is unreachable the store degrades rather than stalls the partition: a lookup
reports "not seen" (the worst case is one extra provider call, whose result downstream
consumers deduplicate by event id) and a save is skipped, both with a warning; a missing
mark reads as "no stream started" and an unsaved one is skipped likewise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from modelbus_runtime.logging import OutageWarning
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """One event to publish: where, under which id and CloudEvents type, and its bytes."""

    topic: str
    key: str
    event_id: str
    ce_type: str
    value: bytes

    def dumps(self) -> bytes:
        return orjson.dumps({"topic": self.topic, "key": self.key, "event_id": self.event_id,
                             "ce_type": self.ce_type, "value": self.value.decode()})

    @classmethod
    def loads(cls, raw: bytes) -> Output:
        data = orjson.loads(raw)
        return cls(data["topic"], data["key"], data["event_id"], data["ce_type"],
                   data["value"].encode())


class OutputStore:
    def __init__(self, redis, *, ttl_s: int = 86_400, prefix: str = "mb:worker:out",
                 stream_prefix: str = "mb:worker:streamed") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.stream_prefix = stream_prefix
        self._outage = OutageWarning(log, "idempotency store")

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}:{task_id}"

    async def get(self, task_id: str) -> Output | None:
        try:
            key = self._key(task_id)
            raw = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            self._outage.warn("handling tasks as new", exc)
            return None
        return Output.loads(raw) if raw else None

    async def put(self, task_id: str, output: Output) -> None:
        try:
            key, value = self._key(task_id), output.dumps()
            await self.redis.set(key, value, ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            self._outage.warn("outputs not kept", exc)

    async def mark_stream_started(self, task_id: str) -> None:
        try:
            await self.redis.set(f"{self.stream_prefix}:{task_id}", b"1", ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            self._outage.warn("stream started marks not kept", exc)

    async def stream_started(self, task_id: str) -> bool:
        try:
            return bool(await self.redis.exists(f"{self.stream_prefix}:{task_id}"))
        except (RedisError, OSError) as exc:
            self._outage.warn("redelivered streams handled as new", exc)
            return False
