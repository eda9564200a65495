"""Prometheus metrics of the adapter worker (the runtime's shared ones live in
``modelbus_runtime.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
STREAM_TTFT = Histogram(
    "modelbus_stream_ttft_seconds",
    "Streamed tasks: time from the task's start at the worker to its first stream event "
    "published (retries before the first delta included), by provider and route",
    ["provider", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60),
)
STREAM_EVENTS = Histogram(
    "modelbus_stream_events_per_request",
    "Stream events published for one streamed task, the last (end or error) included",
    ["provider"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
STALE_RETRIES = Counter(
    "modelbus_provider_stale_retries_total",
    "Requests that failed on a reused pooled connection the provider had closed, before any "
    "response byte, and were sent once more on a fresh connection (not a failed attempt)",
    ["provider"],
)
