"""Exact-match response cache in Redis, opt-in per route.

The router computes the key (tenant, model(s), rendered prompt and parameters: see the
router's ``cache_key``), looks it up before dispatch and answers a hit itself; the aggregator
stores a successful response under the key the decision carried. Keys always include the
tenant, so a cached answer is never shared across tenants. Values are the response JSON.

The route's TTL travels inside the key (``"<ttl_s>:<sha256>"``, see :func:`make_cache_key`)
because the decision has no TTL field: ``put(key, response)`` without ``ttl_s`` uses it.
"""

from __future__ import annotations

import hashlib

import orjson
from modelbus_schemas import ResponseEvent
from pydantic import ValidationError
from redis.exceptions import RedisError

from modelbus_runtime.errors import TransientInfraError

KEY_PREFIX = "modelbus:cache:"
DEFAULT_TTL_S = 300


def make_cache_key(tenant: str, models: list[str], prompt: object, params: dict, ttl_s: int) -> str:
    """The exact-match key: tenant, model refs, the rendered prompt and the parameters."""
    body = orjson.dumps(
        {"tenant": tenant, "models": models, "prompt": prompt, "params": params},
        option=orjson.OPT_SORT_KEYS,
    )
    return f"{int(ttl_s)}:{hashlib.sha256(body).hexdigest()}"


def ttl_of(cache_key: str) -> int:
    head, _, _ = cache_key.partition(":")
    return int(head) if head.isdigit() else DEFAULT_TTL_S


class ResponseCache:
    def __init__(self, redis) -> None:
        self.redis = redis

    async def get(self, cache_key: str) -> ResponseEvent | None:
        try:
            raw = await self.redis.get(KEY_PREFIX + cache_key)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for the response cache: {exc}") from exc
        if raw is None:
            return None
        try:
            return ResponseEvent.model_validate_json(raw)
        except ValidationError:
            return None  # written by an incompatible version: a miss, overwritten on the next put

    async def put(self, cache_key: str, response: ResponseEvent, ttl_s: int | None = None) -> None:
        """Store a successful response; ``ttl_s`` defaults to the TTL carried in the key."""
        ttl_s = ttl_of(cache_key) if ttl_s is None else ttl_s
        if response.status != "ok" or ttl_s <= 0:
            return
        try:
            await self.redis.set(KEY_PREFIX + cache_key, response.model_dump_json(), ex=ttl_s)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for the response cache: {exc}") from exc
