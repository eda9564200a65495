"""Fixtures of the guardrail tests through the broker: the simulator, an OpenAI worker, the
router (with :data:`POLICY`) and the aggregator as subprocesses on the session's broker and
Redis, started with the project's ``Stack``; requests go in with plain aiokafka."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from modelbus_cli.stack import Stack
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.settings import RuntimeSettings

from tests.upstream import RESPONSES, TailReader, Upstream

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}

POLICY = f"""
routes:
  gr-redact:                       # default guardrails: personal data redacted, not restored
    targets: [{{model: openai/gr-echo}}]
  gr-restore:
    targets: [{{model: openai/gr-echo}}]
    guardrails: {{input: {{pii: {{restore: true}}}}}}
  gr-json:
    targets: [{{model: openai/gr-json-bad}}]
    guardrails: {{output: {{json_schema: {{schema: {json.dumps(SCHEMA)}, repairs: 1}}}}}}
  gr-json-cascade:
    strategy: cascade
    targets: [{{model: openai/gr-json-bad}}, {{model: openai/gr-json-good}}]
    guardrails: {{output: {{json_schema: {{schema: {json.dumps(SCHEMA)}}}}}}}
  gr-gated:
    targets: [{{model: openai/gr-echo}}]
    guardrails: {{approval: {{metadata: {{approval: required}}}}}}
"""


@dataclass
class GuardBus:
    stack: Stack
    producer: EventProducer
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def rid(self, name: str) -> str:
        return f"gr-{name}-{self.run}-{uuid.uuid4().hex[:4]}"

    def behave(self, model: str, **behaviour) -> None:
        httpx.put(f"{self.stack.simulator_url}/_sim/models/{model}",
                  json=behaviour).raise_for_status()

    def calls(self, model: str) -> int:
        stats = httpx.get(f"{self.stack.simulator_url}/_sim/stats").json()
        return stats["models"].get(model, {}).get("calls", 0)

    async def tail(self, topic: str = RESPONSES) -> TailReader:
        reader = TailReader(self.stack.bootstrap, topic)
        await reader.start()
        return reader

    def upstream(self) -> Upstream:
        return Upstream(self.stack.bootstrap)


async def bodies_of(reader: TailReader, rid: str, count: int = 1, timeout: float = 30.0):
    records = await reader.collect(lambda r: r.key.decode() == rid, count, timeout)
    return [json.loads(r.value) for r in records]


@pytest.fixture(scope="module")
async def guard_bus(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp("guardrails")
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    stack = Stack(workdir)
    stack.bootstrap, stack.redis_url, stack.database_url = kafka_bootstrap, redis_url, "unused"
    producer = EventProducer(RuntimeSettings(kafka_bootstrap_servers=kafka_bootstrap), "tests",
                             role="approver")
    try:
        stack.start_infra()
        stack.start_simulator()
        stack.start_service("worker-openai", "modelbus_adapter_worker.app",
                            stack.worker_env("openai"))
        stack.start_service("aggregator", "modelbus_aggregator.app", {
            "MODELBUS_AGGREGATOR_STATE_PREFIX": f"test:grbus:{uuid.uuid4().hex[:8]}",
            "MODELBUS_AGGREGATOR_GROUP_ID": f"gr-agg-{uuid.uuid4().hex[:6]}"})
        stack.start_service("router", "modelbus_router.app",
                            {"MODELBUS_POLICY_PATH": str(policy)})
        stack.wait_ready()
        await producer.start()
        yield GuardBus(stack, producer)
    finally:
        await producer.stop()
        stack.stop()
