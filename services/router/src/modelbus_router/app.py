"""Router composition root: consume requests, admit them (whose request it is, and whether it
may be answered on its reply topic: :func:`modelbus_router.identity.admit`; a refusal is an
error response on ``modelbus.responses.v1``), route them with the engine, publish the tasks
(or the one response: an error or a cache hit; or, for a request the approval gate parks,
the approval request), then complete the idempotency claim. A second consumer reads the
approvers' decisions and publishes what routing the parked request produced.

Settings beyond the runtime's: ``MODELBUS_POLICY_PATH``, ``MODELBUS_TENANT_KEYS`` /
``MODELBUS_TENANT_KEYS_FILE`` (signed-request mode, :mod:`modelbus_router.identity`) and
``MODELBUS_REPLY_TOPICS_TTL_S`` (how long the broker's topic list is trusted,
:mod:`modelbus_router.topic_directory`)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from modelbus_runtime.circuit import CircuitBreakers
from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.redis import build_redis
from modelbus_runtime.service import Service, ServiceContext, run_service
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import ApprovalDecisionEvent, RequestEvent
from modelbus_schemas.topics import (
    APPROVALS_DECISIONS,
    APPROVALS_PENDING,
    REQUESTS,
    RESPONSES,
    tasks_topic,
)
from pydantic import Field

from modelbus_router.engine import Outcome, RouterEngine
from modelbus_router.errors import RoutingError
from modelbus_router.identity import Identity, admit, load_tenant_keys
from modelbus_router.policy import PolicyError, load_policy
from modelbus_router.reload import PolicySource
from modelbus_router.topic_directory import BrokerTopics


class RouterSettings(RuntimeSettings):
    policy_path: str | None = Field(default=None, description="YAML policy; default: packaged")
    policy_reload_s: float = Field(default=1.0, gt=0, description="how often to check the file")
    approvals_fetch_max_wait_ms: int = Field(default=250, gt=0,
                                             description="long poll of the approvals consumer")
    tenant_keys: str | None = Field(default=None, repr=False, description=(
        "signed-request mode: <tenant>=<kid>:<secret>[;<kid>:<secret>] lines"))
    tenant_keys_file: str | None = Field(default=None, description="the same, from a file")
    reply_topics_ttl_s: float = Field(default=5.0, gt=0,
                                      description="how long the broker's topic list is kept")


async def build(ctx: ServiceContext) -> Service:
    settings: RouterSettings = ctx.settings  # type: ignore[assignment]
    policies = PolicySource(settings.policy_path)  # a bad policy raises: refuse to start
    redis = build_redis(settings)
    engine = RouterEngine(policies, redis, health=CircuitBreakers(redis))
    producer = ctx.producer
    identity = Identity(settings.signing_ring(),
                        load_tenant_keys(settings.tenant_keys, settings.tenant_keys_file))
    topics = BrokerTopics(settings.kafka_client_options(), ttl_s=settings.reply_topics_ttl_s)
    watcher = asyncio.create_task(policies.watch(settings.policy_reload_s))

    async def handle(message: Inbound) -> None:
        request = message.decode(RequestEvent)
        carry = message.passthrough_headers()
        try:
            await admit(identity, policies.current.reply_topics, topics, request,
                        topic=message.topic, key=message.key, value=message.value,
                        headers=message.headers)
        except RoutingError as exc:  # never routed, never answered where it asked
            refusal = engine.refusal(request, exc)
            await producer.publish(RESPONSES, refusal, key=request.request_id,
                                   event_id=refusal.event_id, headers=carry)
            return
        await emit(request, await engine.route(request), carry)

    async def handle_decision(message: Inbound) -> None:
        outcome = await engine.on_approval(message.decode(ApprovalDecisionEvent))
        if outcome.request is not None:
            await emit(outcome.request, outcome, message.passthrough_headers())

    async def emit(request: RequestEvent, outcome: Outcome, carry: dict[str, str]) -> None:
        if outcome.approval is not None:
            await producer.publish(APPROVALS_PENDING, outcome.approval, key=request.request_id,
                                   event_id=outcome.approval.event_id, headers=carry)
        if outcome.response is not None:
            await producer.publish(
                request.reply_to, outcome.response, key=request.request_id,
                event_id=outcome.response.event_id, headers=carry,
            )
        if outcome.tasks:
            await asyncio.gather(*(
                producer.publish(tasks_topic(t.provider), t, key=t.request_id,
                                 event_id=t.event_id, headers=carry)
                for t in outcome.tasks
            ))
        if outcome.tasks or outcome.finished:
            await engine.published(request)

    async def close() -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await redis.aclose()
        await topics.close()

    consumer = EventConsumer(
        ctx.settings, group_id="modelbus-router", topics=[REQUESTS], dlq=ctx.dlq, handler=handle
    )
    # approvers decide at human pace: a long poll costs nothing and saves the broker and
    # this process a fetch round trip every few milliseconds
    approvals = EventConsumer(
        ctx.settings, group_id="modelbus-router-approvals", topics=[APPROVALS_DECISIONS],
        dlq=ctx.dlq, handler=handle_decision,
        fetch_max_wait_ms=settings.approvals_fetch_max_wait_ms,
    )
    return Service(consumers=[consumer, approvals], closers=[close])


def main() -> None:
    settings = RouterSettings()
    try:
        load_policy(settings.policy_path)
        load_tenant_keys(settings.tenant_keys, settings.tenant_keys_file)
    except PolicyError as exc:
        print(f"router: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, ValueError) as exc:  # the message names the entry, never a secret
        print(f"router: refusing to start: tenant keys: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    run_service("router", settings, build)


if __name__ == "__main__":
    main()
