"""Adapter worker composition root: one deployment per provider, many calls in flight.

Consumes ``modelbus.tasks.<provider>.v1``; for each task the :class:`TaskHandler` produces
one output — a :class:`ResultEvent` on ``modelbus.results.v1`` or the task forwarded to its
fallback's topic — which is published here, and a streamed task's stream events on
``modelbus.stream.v1``, published through the same signing producer. Everything else lives in plain modules.
"""

from __future__ import annotations

from modelbus_runtime.circuit import CircuitBreakers
from modelbus_runtime.claimcheck import build_blob_store
from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.logging import register_secret
from modelbus_runtime.ratelimit import RateLimit, RateLimiter
from modelbus_runtime.redis import build_redis
from modelbus_runtime.service import Service, ServiceContext, run_service
from modelbus_runtime.settled import SettledMarks
from modelbus_schemas import TaskEvent
from modelbus_schemas.topics import tasks_topic

from modelbus_adapter_worker.adapters import build_adapter, build_embedder
from modelbus_adapter_worker.embed_cache import EmbeddingCache
from modelbus_adapter_worker.executor import Executor
from modelbus_adapter_worker.handler import TaskHandler
from modelbus_adapter_worker.idempotency import Output, OutputStore
from modelbus_adapter_worker.settings import WorkerSettings
from modelbus_adapter_worker.stats import load_model_stats
from modelbus_adapter_worker.transport import HttpTransport


def build_handler(settings: WorkerSettings, redis, transport: HttpTransport,
                  blobs=None) -> TaskHandler:
    key = settings.resolved_api_key()
    register_secret(key)
    options = {"default_max_tokens": settings.anthropic_max_tokens} if (
        settings.provider == "anthropic") else {}
    limit = RateLimit(settings.requests_per_min, settings.tokens_per_min, settings.rate_burst_s)
    executor = Executor(
        build_adapter(settings.provider, key, **options), transport,
        default_retry=settings.default_retry(), stream=settings.stream,
        breakers=CircuitBreakers(redis, failure_threshold=settings.breaker_failure_threshold,
                                 window_s=settings.breaker_window_s,
                                 open_s=settings.breaker_open_s,
                                 closed_cache_s=settings.breaker_closed_cache_s),
        limiter=RateLimiter(redis, settings.provider, limit) if limit.enabled else None,
        stats=load_model_stats(redis),
        settled=SettledMarks(redis),
        embedder=build_embedder(settings.provider, key),
        embed_cache=EmbeddingCache(redis, settings.embedding_cache_ttl_s)
        if settings.embedding_cache_ttl_s > 0 else None,
        blobs=blobs,
    )
    return TaskHandler(executor, OutputStore(redis, ttl_s=settings.result_ttl_s),
                       stream_flush_ms=settings.stream_flush_ms,
                       stream_flush_deltas=settings.stream_flush_deltas)


def build_transport(settings: WorkerSettings) -> HttpTransport:
    return HttpTransport(settings.resolved_base_url(), max_connections=settings.max_connections,
                         keepalive_s=settings.provider_keepalive_s)


async def build(ctx: ServiceContext) -> Service:
    settings: WorkerSettings = ctx.settings  # type: ignore[assignment]
    redis = build_redis(settings, max_connections=settings.redis_max_connections)
    transport = build_transport(settings)
    blobs = build_blob_store(settings)  # resolves claim-check references (no I/O until used)
    handler = build_handler(settings, redis, transport, blobs)
    producer = ctx.producer

    async def handle(message: Inbound) -> None:
        task = message.decode(TaskEvent)
        headers = message.passthrough_headers()

        async def publish(out: Output) -> None:  # signed by the producer, like every output
            await producer.publish_bytes(out.topic, key=out.key, value=out.value,
                                         event_id=out.event_id, ce_type=out.ce_type,
                                         headers=headers)

        out = await handler.handle(task, publish)
        if out is not None:  # None: the request was settled, nothing to publish
            await publish(out)

    consumer = EventConsumer(
        settings, group_id=f"modelbus-worker-{settings.provider}",
        topics=[tasks_topic(settings.provider)], dlq=ctx.dlq, handler=handle,
        order_by=Inbound.event_id,  # parts of an ensemble run at once; duplicates wait
    )
    return Service(consumers=[consumer], closers=[transport.close, redis.aclose, blobs.close])


def main() -> None:
    run_service("adapter-worker", WorkerSettings(), build)


if __name__ == "__main__":
    main()
