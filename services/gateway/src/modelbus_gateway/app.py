"""Gateway composition root: API keys, policy, reply and stream listeners, producer, HTTP
routes.

The API is served by the runtime's HTTP server (``MODELBUS_HEALTH_PORT``) beside the health
and metrics endpoints; the reply listener and the stream listener are the service's
"consumers", so ``/readyz`` turns ready once this instance can receive its responses and
stream events. On shutdown new calls get 503 and calls in flight get their answers (within
``drain_timeout_s``) before the listeners stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiokafka.errors import MessageSizeTooLargeError
from modelbus_router.policy import PolicyError
from modelbus_router.reload import PolicySource
from modelbus_runtime.claimcheck import build_blob_store
from modelbus_runtime.redis import build_redis
from modelbus_runtime.service import Service, ServiceContext, run_service
from modelbus_schemas import RequestEvent
from modelbus_schemas.topics import REQUESTS
from pydantic import ValidationError

from modelbus_gateway.admission import Admission
from modelbus_gateway.api import Api
from modelbus_gateway.auth import ApiKeys
from modelbus_gateway.body import check_event_size
from modelbus_gateway.correlation import PendingReplies
from modelbus_gateway.errors import event_too_large
from modelbus_gateway.gateway import Gateway
from modelbus_gateway.idempotency import IdempotencyStore
from modelbus_gateway.large_content import RequestFitter
from modelbus_gateway.metrics import STREAMING_CALLS
from modelbus_gateway.replies import ReplyListener, reply_topic_for
from modelbus_gateway.settings import GatewaySettings
from modelbus_gateway.stream_hub import StreamHub
from modelbus_gateway.stream_listener import StreamListener


def load_keys(settings: GatewaySettings) -> ApiKeys:
    return ApiKeys.load(settings.api_keys, settings.api_keys_file)


async def build(ctx: ServiceContext) -> Service:
    settings: GatewaySettings = ctx.settings  # type: ignore[assignment]
    policies = PolicySource(settings.policy_path)
    watcher = asyncio.create_task(policies.watch(settings.policy_reload_s))
    redis = build_redis(settings)
    reply_topic = settings.reply_topic or reply_topic_for(settings.instance_id)
    producer = ctx.producer

    fitter = RequestFitter(build_blob_store(settings),
                           threshold_bytes=settings.claim_check_threshold_bytes,
                           max_message_bytes=settings.max_message_bytes)

    async def publish(request: RequestEvent) -> None:
        value = await fitter.encoded(request)  # large content by claim check
        check_event_size(value, settings.max_request_bytes)  # what the router reads
        try:
            await producer.publish_bytes(REQUESTS, key=request.request_id, value=value,
                                         event_id=request.request_id,
                                         ce_type=RequestEvent.CE_TYPE)
        except MessageSizeTooLargeError:  # the producer's or the broker's message size
            raise event_too_large(len(value)) from None

    gateway = Gateway(publish, PendingReplies(settings.max_pending),
                      IdempotencyStore(redis, settings.idempotency_ttl_s),
                      grace_ms=settings.deadline_grace_ms, poll_ms=settings.idempotency_poll_ms)
    admission = Admission(redis, load_keys(settings),
                          key_requests_per_min=settings.key_requests_per_min,
                          key_burst=settings.key_burst,
                          auth_failures_per_min=settings.auth_failures_per_min,
                          auth_failure_burst=settings.auth_failure_burst,
                          prefix=settings.rate_limit_prefix)
    streams = StreamHub(settings.stream_queue_events, settings.max_pending)
    STREAMING_CALLS.set_function(lambda: len(streams))
    api = Api(gateway, admission, lambda: policies.current, reply_topic=reply_topic,
              default_budget_ms=settings.default_latency_budget_ms,
              stream_chunk_chars=settings.stream_chunk_chars,
              max_body_bytes=settings.max_body_bytes, access_log=settings.access_log,
              streams=streams)

    def drain():
        return gateway.drain(settings.drain_timeout_s)

    listener = ReplyListener(settings, reply_topic, settings.reply_partitions,
                             gateway.on_response, before_stop=drain,
                             expecting=lambda: len(gateway.pending))
    stream_listener = StreamListener(settings, streams, before_stop=drain)

    async def close() -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await redis.aclose()
        await fitter.store.close()

    return Service(consumers=[listener, stream_listener], closers=[close], routes=api.routes())


def main() -> None:
    try:
        settings = GatewaySettings()
        PolicySource(settings.policy_path)
        keys = load_keys(settings)
    except (PolicyError, ValidationError, ValueError) as exc:
        print(f"gateway: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not len(keys):
        print("gateway: warning: no API keys configured; every call will get 401",
              file=sys.stderr)
    run_service("gateway", settings, build)


if __name__ == "__main__":
    main()
