"""Embedding cache in Redis: one vector per (tenant, provider, model, dimensions,
sha256 of the input), so a text embedded once is not sent again and costs nothing.

The tenant is part of the key like in every modelbus cache (a hit must not tell one tenant
what another embedded). Vectors are stored as packed float64, exactly as received. The cache
only ever saves work: a Redis that fails to answer reads as a miss and a failed write is
skipped (both logged), so an outage costs provider calls, never a request.
"""

from __future__ import annotations

import hashlib
import logging
from array import array

from redis.exceptions import RedisError

from modelbus_adapter_worker.metrics import EMBEDDING_CACHE

log = logging.getLogger(__name__)

KEY_PREFIX = "modelbus:emb:"
DEFAULT_TTL_S = 7 * 86_400


def cache_key(tenant: str, provider: str, model: str, dimensions: int | None,
              text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    scope = f"{len(tenant)}:{tenant}|{provider}|{model}|{dimensions or 0}|{digest}"
    return KEY_PREFIX + hashlib.sha256(scope.encode()).hexdigest()


class EmbeddingCache:
    def __init__(self, redis, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def get_many(self, keys: list[str]) -> list[list[float] | None]:
        if not keys:
            return []
        try:
            raw = await self.redis.mget(keys)
        except RedisError as exc:
            log.warning("embedding cache unavailable: every input is a miss (%s)",
                        exc.__class__.__name__)
            return [None] * len(keys)
        out: list[list[float] | None] = []
        for value in raw:
            out.append(None if value is None else array("d", bytes(value)).tolist())
        hits = sum(v is not None for v in out)
        EMBEDDING_CACHE.labels(outcome="hit").inc(hits)
        EMBEDDING_CACHE.labels(outcome="miss").inc(len(out) - hits)
        return out

    async def put_many(self, items: dict[str, list[float]]) -> None:
        if not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, vector in items.items():
                    pipe.set(key, array("d", vector).tobytes(), ex=self.ttl_s)
                await pipe.execute()
        except RedisError as exc:
            log.warning("embedding cache write skipped (%s)", exc.__class__.__name__)
