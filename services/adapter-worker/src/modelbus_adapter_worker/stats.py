"""The router's model statistics (latency, output tokens per model), fed after successful
calls. ``modelbus_runtime.model_stats`` is owned by the router work; while it is absent the
worker runs without it.

The router keeps a short rolling window per model, so a sample every ``min_interval_s`` per
model carries the same information as one per call: :class:`SampledStats` forwards at most
that many, keeping a Redis round trip off most calls of a busy worker. Failures to record
are logged (throttled) and never fail a call.
"""

from __future__ import annotations

import logging
import time

from modelbus_runtime.logging import OutageWarning

log = logging.getLogger(__name__)


class SampledStats:
    def __init__(self, stats, *, min_interval_s: float = 0.05) -> None:
        self.stats = stats
        self.min_interval_s = min_interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._outage = OutageWarning(log, "model stats store")

    async def observe(self, provider: str, model: str, latency_ms: float,
                      output_tokens: int) -> None:
        now = time.monotonic()
        target = (provider, model)
        if now - self._last.get(target, -1e9) < self.min_interval_s:
            return
        if len(self._last) > 4096:
            self._last.clear()
        self._last[target] = now
        try:
            await self.stats.observe(provider, model, latency_ms, output_tokens)
        except Exception as exc:  # noqa: BLE001 - statistics never fail a call
            self._outage.warn("not recorded", exc)


def load_model_stats(redis, *, min_interval_s: float = 0.05) -> SampledStats | None:
    try:
        from modelbus_runtime.model_stats import ModelStats
    except ImportError:
        log.warning("modelbus_runtime.model_stats not available; model stats not recorded")
        return None
    return SampledStats(ModelStats(redis), min_interval_s=min_interval_s)
