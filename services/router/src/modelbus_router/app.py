"""Router composition root: consume requests, admit them (whose request it is, and whether it
may be answered on its reply topic: :func:`modelbus_router.identity.admit`; a refusal is an
error response on ``modelbus.responses.v1``), route them with the engine, publish the tasks
(or the one response: an error or a cache hit; or, for a request the approval gate parks,
the approval request), then complete the idempotency claim. A second consumer reads the
approvers' decisions and publishes what routing the parked request produced. With a shadow
policy (``MODELBUS_SHADOW_POLICY_PATH``, :mod:`modelbus_router.shadow`) each routed request is
also decided under it, after the active answer is published, and that decision goes to
``modelbus.decisions.shadow.v1``. ``GET /policy`` on the health port names the policy
versions in force (``modelbus policy show`` reads it).

Settings beyond the runtime's: ``MODELBUS_POLICY_PATH``, ``MODELBUS_TENANT_KEYS`` /
``MODELBUS_TENANT_KEYS_FILE`` (signed-request mode, :mod:`modelbus_router.identity`) and
``MODELBUS_REPLY_TOPICS_TTL_S`` (how long the broker's topic list is trusted,
:mod:`modelbus_router.topic_directory`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from modelbus_runtime.circuit import CircuitBreakers
from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.logging import log_fields
from modelbus_runtime.redis import build_redis
from modelbus_runtime.service import Service, ServiceContext, run_service
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import ApprovalDecisionEvent, RequestEvent
from modelbus_schemas.topics import (
    APPROVALS_DECISIONS,
    APPROVALS_PENDING,
    DECISIONS_SHADOW,
    REQUESTS,
    RESPONSES,
    tasks_topic,
)
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelbus_router.claims import ClaimCheck
from modelbus_router.engine import Outcome, RouterEngine
from modelbus_router.errors import RoutingError
from modelbus_router.gateway_content import inflate
from modelbus_router.identity import Identity, admit, load_tenant_keys
from modelbus_router.policy import PolicyError, load_policy
from modelbus_router.reload import PolicySource
from modelbus_router.shadow import ShadowRouter
from modelbus_router.topic_directory import BrokerTopics

log = logging.getLogger(__name__)


class RouterSettings(RuntimeSettings):
    policy_path: str | None = Field(default=None, description="YAML policy; default: packaged")
    shadow_policy_path: str | None = Field(
        default=None, description="a candidate policy decided beside the active one, never served")
    policy_reload_s: float = Field(default=1.0, gt=0, description="how often to check the file")
    approvals_fetch_max_wait_ms: int = Field(default=250, gt=0,
                                             description="long poll of the approvals consumer")
    approvals_idle_fetch_max_wait_ms: int = Field(
        default=2000, gt=0, description="its long poll after a quiet spell")
    tenant_keys: str | None = Field(default=None, repr=False, description=(
        "signed-request mode: <tenant>=<kid>:<secret>[;<kid>:<secret>] lines"))
    tenant_keys_file: str | None = Field(default=None, description="the same, from a file")
    reply_topics_ttl_s: float = Field(default=5.0, gt=0,
                                      description="how long the broker's topic list is kept")


async def build(ctx: ServiceContext) -> Service:
    settings: RouterSettings = ctx.settings  # type: ignore[assignment]
    policies = PolicySource(settings.policy_path)  # a bad policy raises: refuse to start
    redis = build_redis(settings)
    claims = ClaimCheck.from_settings(settings)
    engine = RouterEngine(policies, redis, health=CircuitBreakers(redis), claims=claims)
    producer = ctx.producer
    identity = Identity(settings.signing_ring(),
                        load_tenant_keys(settings.tenant_keys, settings.tenant_keys_file))
    topics = BrokerTopics(settings.kafka_client_options(), ttl_s=settings.reply_topics_ttl_s)
    shadow = ShadowRouter(settings.shadow_policy_path) if settings.shadow_policy_path else None
    watchers = [asyncio.create_task(source.watch(settings.policy_reload_s))
                for source in (policies, shadow.policies if shadow else None) if source]

    async def handle(message: Inbound) -> None:
        request = message.decode(RequestEvent)
        carry = message.passthrough_headers()
        try:
            caller = await admit(identity, policies.current.reply_topics, topics, request,
                                 topic=message.topic, key=message.key, value=message.value,
                                 headers=message.headers)
            if caller.gateway:  # the gateway's claim-checked content is screened as sent
                request = await inflate(claims.store, request)
        except RoutingError as exc:  # never routed, never answered where it asked
            refusal = engine.refusal(request, exc)
            await producer.publish(RESPONSES, refusal, key=request.request_id,
                                   event_id=refusal.event_id, headers=carry)
            return
        policy = policies.current
        outcome = await engine.route(request)
        await emit(request, outcome, carry)
        if shadow is not None:
            await shadow_decision(policy, request, outcome, carry)

    async def shadow_decision(policy, request: RequestEvent, outcome: Outcome,
                              carry: dict[str, str]) -> None:
        """Never changes what is served: runs after the answer is out, and any failure is
        logged and dropped."""
        try:
            event = shadow.decide(policy, request, outcome)
            if event is not None:
                await producer.publish(DECISIONS_SHADOW, event, key=request.request_id,
                                       event_id=event.event_id, headers=carry)
        except Exception:  # a shadow failure must never reach the caller
            log.exception("shadow decision failed",
                          extra=log_fields(request_id=request.request_id))

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

    async def policy_info(_: Request) -> JSONResponse:
        def describe(source: PolicySource) -> dict:
            return {"version": source.current.version, "path": str(source.path),
                    "last_reload_error": source.last_error,
                    "routes": sorted(source.current.routes)}

        return JSONResponse({"service": "router", **describe(policies),
                             "shadow": describe(shadow.policies) if shadow else None})

    async def close() -> None:
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await redis.aclose()
        await topics.close()
        await claims.store.close()

    # requests may be larger than a task: their large content is claim-checked (claims.py)
    inbound = settings.model_copy(update={"max_message_bytes": settings.max_request_bytes})
    consumer = EventConsumer(
        inbound, group_id="modelbus-router", topics=[REQUESTS], dlq=ctx.dlq, handler=handle
    )
    # approvers decide at human pace: a long poll costs nothing and saves the broker and
    # this process a fetch round trip every few milliseconds
    approvals = EventConsumer(
        ctx.settings, group_id="modelbus-router-approvals", topics=[APPROVALS_DECISIONS],
        dlq=ctx.dlq, handler=handle_decision,
        fetch_max_wait_ms=settings.approvals_fetch_max_wait_ms,
        idle_fetch_max_wait_ms=settings.approvals_idle_fetch_max_wait_ms,
    )
    return Service(consumers=[consumer, approvals], closers=[close],
                   routes=[Route("/policy", policy_info)])


def main() -> None:
    settings = RouterSettings()
    try:
        load_policy(settings.policy_path)
        if settings.shadow_policy_path:
            load_policy(settings.shadow_policy_path)
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
