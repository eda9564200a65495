"""Rolling per-model latency statistics in Redis, shared by every router and worker replica.

The adapter worker calls :meth:`ModelStats.observe` after each successful call; the router
reads :meth:`ModelStats.snapshot` for latency-based routing. Each model keeps a bounded list
of its most recent samples (``LPUSH`` + ``LTRIM`` + ``EXPIRE`` in one pipelined round trip, no
read-modify-write, so concurrent writers never lose an update). A snapshot reads every
target's list in one pipeline and computes an EWMA over the fresh samples, oldest first, so
recent calls weigh most and samples older than ``max_age_s`` are ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from modelbus_runtime.errors import TransientInfraError

KEY_PREFIX = "modelbus:stats:"


@dataclass(frozen=True)
class Stats:
    """What is known of one model's recent speed."""

    latency_ms: float
    ms_per_output_token: float | None
    samples: int


def _key(provider: str, model: str) -> str:
    return f"{KEY_PREFIX}{provider}/{model}"


class ModelStats:
    def __init__(
        self, redis, *, window: int = 50, alpha: float = 0.3, max_age_s: float = 600.0
    ) -> None:
        self.redis = redis
        self.window = window
        self.alpha = alpha
        self.max_age_s = max_age_s

    async def observe(
        self, provider: str, model: str, latency_ms: float, output_tokens: int
    ) -> None:
        """Record one successful call (latency of the whole call, output tokens produced)."""
        sample = f"{time.time():.3f}:{max(latency_ms, 0.0):.3f}:{max(output_tokens, 0)}"
        key = _key(provider, model)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(key, sample)
                pipe.ltrim(key, 0, self.window - 1)
                pipe.expire(key, int(self.max_age_s * 2) + 1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for model stats: {exc}") from exc

    async def snapshot(self, targets: list[tuple[str, str]]) -> dict[tuple[str, str], Stats]:
        """Stats of each target that has fresh samples; targets without any are left out."""
        if not targets:
            return {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for provider, model in targets:
                    pipe.lrange(_key(provider, model), 0, self.window - 1)
                lists = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for model stats: {exc}") from exc
        oldest = time.time() - self.max_age_s
        out: dict[tuple[str, str], Stats] = {}
        for target, raw in zip(targets, lists):
            stats = self._summarise(raw, oldest)
            if stats is not None:
                out[target] = stats
        return out

    def _summarise(self, raw: list[bytes], oldest: float) -> Stats | None:
        latency = per_token = None
        count = 0
        for item in reversed(raw):  # oldest first, so the EWMA ends on the newest sample
            try:
                ts, lat, tokens = (float(x) for x in item.decode().split(":"))
            except ValueError:
                continue
            if ts < oldest:
                continue
            count += 1
            latency = lat if latency is None else latency + self.alpha * (lat - latency)
            if tokens > 0:
                mspt = lat / tokens
                per_token = mspt if per_token is None else per_token + self.alpha * (
                    mspt - per_token
                )
        if latency is None:
            return None
        return Stats(latency_ms=latency, ms_per_output_token=per_token, samples=count)
