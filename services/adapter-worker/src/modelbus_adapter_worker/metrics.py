"""Prometheus metrics of the adapter worker (the runtime's shared ones live in
``modelbus_runtime.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PROVIDER_CALLS = Counter(
    "modelbus_provider_calls_total", "HTTP calls to providers, by outcome",
    ["provider", "model", "outcome"],
)
CALLS_IN_FLIGHT = Gauge("modelbus_provider_calls_in_flight", "Provider calls in flight now")
FALLBACKS = Counter(
    "modelbus_fallbacks_total", "Tasks forwarded to their next target", ["from_provider"]
)
REPLAYED = Counter(
    "modelbus_task_replays_total", "Redelivered tasks answered from the idempotency store"
)
SETTLED_SKIPS = Counter(
    "modelbus_tasks_settled_total",
    "Tasks stopped because their request was already settled (no further provider call)",
)
EMBEDDING_CACHE = Counter(
    "modelbus_embedding_cache_total", "Embedding inputs looked up in the cache, by outcome",
    ["outcome"],
)
