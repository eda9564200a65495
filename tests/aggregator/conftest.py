"""Cross-service fixtures of the aggregator tests: a real broker, Redis, the provider
simulator over HTTP, a real OpenAI adapter worker and the aggregator as subprocesses.

Tests act as the router: they publish :class:`TaskEvent` s with execution plans straight
onto ``modelbus.tasks.openai.v1`` and read the reply topic like an upstream system.
Every simulator model is served through the OpenAI wire format; models differ by name.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from modelbus_cli.processes import http_ok, wait_for
from modelbus_cli.stack import Stack
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import (
    Caller,
    ChatMessage,
    ExecutionPlan,
    ModelRef,
    ResponseEvent,
    RoutingDecision,
    TaskEvent,
)
from modelbus_schemas.identity import scoped_id

from tests.upstream import RESPONSES, TailReader


@dataclass
class Bus:
    """What a test needs: publish tasks as the router, script the simulator, read replies."""

    stack: Stack
    producer: EventProducer
    redis: aioredis.Redis
    prefix: str
    aggregator_env: dict[str, str]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def rid(self, name: str) -> str:
        return f"agg-{name}-{self.run}-{uuid.uuid4().hex[:4]}"

    def behave(self, model: str, **behaviour) -> None:
        response = httpx.put(f"{self.stack.simulator_url}/_sim/models/{model}", json=behaviour)
        response.raise_for_status()

    def calls(self, model: str) -> int:
        stats = httpx.get(f"{self.stack.simulator_url}/_sim/stats").json()
        return stats["models"].get(model, {}).get("calls", 0)

    async def publish(self, tasks: list[TaskEvent]) -> None:
        for task in tasks:
            await self.producer.publish(f"modelbus.tasks.{task.provider}.v1", task,
                                        key=task.request_id, event_id=task.event_id)

    async def replies(self) -> TailReader:
        reader = TailReader(self.stack.bootstrap, RESPONSES)
        await reader.start()
        return reader

    def start_aggregator(self, name: str):
        child = self.stack.start_service(name, "modelbus_aggregator.app", self.aggregator_env)
        url = self.stack.health[name]
        wait_for(lambda: http_ok(url + "/readyz"), name, 60, child.proc)
        return child


def tasks_for(rid: str, models: list[str], plan: ExecutionPlan, *, text: str = "hello there",
              deadline_s: float = 60.0, tenant: str = "default") -> list[TaskEvent]:
    """The tasks the router emits for a plan: one per model, part ids in policy order, ids
    scoped by (tenant, request id)."""
    now = datetime.now(UTC)
    decision = RoutingDecision(policy_version="agg-test-v1", route="qa", strategy=plan.mode,
                               selected=[ModelRef(provider="openai", model=m) for m in models],
                               decided_at=now)
    return [TaskEvent(event_id=TaskEvent.make_id(scoped_id(tenant, rid), i), request_id=rid,
                      caller=Caller(tenant=tenant), task="qa", part_id=i,
                      parts_total=len(models), provider="openai", model=m,
                      messages=[ChatMessage(role="user", content=text)], received_at=now,
                      deadline_at=now + timedelta(seconds=deadline_s), decision=decision,
                      plan=plan)
            for i, m in enumerate(models)]


async def responses_of(reader: TailReader, rid: str, count: int = 1,
                       timeout: float = 30.0) -> list[ResponseEvent]:
    records = await reader.collect(lambda r: r.key.decode() == rid, count, timeout)
    return [ResponseEvent.model_validate(json.loads(r.value)) for r in records]


@pytest.fixture(scope="module")
async def bus(tmp_path_factory, kafka_bootstrap, redis_url):
    stack = Stack(tmp_path_factory.mktemp("agg-stack"))
    stack.bootstrap, stack.redis_url, stack.database_url = kafka_bootstrap, redis_url, "unused"
    prefix = f"test:aggbus:{uuid.uuid4().hex[:8]}"
    env = {"MODELBUS_AGGREGATOR_STATE_PREFIX": prefix,
           "MODELBUS_AGGREGATOR_GROUP_ID": f"agg-test-{uuid.uuid4().hex[:6]}"}
    producer = EventProducer(RuntimeSettings(kafka_bootstrap_servers=kafka_bootstrap), "tests",
                             role="router")
    client = aioredis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        stack.start_infra()
        stack.start_simulator()
        stack.start_service("worker-openai", "modelbus_adapter_worker.app",
                            stack.worker_env("openai"))
        stack.start_service("aggregator", "modelbus_aggregator.app", env)
        stack.wait_ready()
        await producer.start()
        yield Bus(stack, producer, client, prefix, env)
    finally:
        await producer.stop()
        await client.aclose()
        stack.stop()
