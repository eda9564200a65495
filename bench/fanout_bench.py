"""Fan-out-3 overhead: ensemble completion time minus the slowest provider's latency.

Starts a tansu broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``), Redis (``REDIS_URL`` / the
machine's, else a private valkey), the provider simulator, one OpenAI adapter worker and
the aggregator. Three simulator models answer in 50, 100 and 150 ms. Each request is
published as the router would (three tasks signed as the router, an ``all`` ensemble) and timed from publish to
its response on the reply topic; the slowest part's provider latency (as the worker
measured it) is subtracted. Requests go one at a time, so nothing queues behind another.

    uv run python bench/fanout_bench.py [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from modelbus_cli.stack import Stack
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import (
    Caller,
    ChatMessage,
    EnsembleSpec,
    ExecutionPlan,
    ModelRef,
    ResponseEvent,
    RoutingDecision,
    TaskEvent,
)
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import RESPONSES, ROUTER, tasks_topic

LATENCIES_MS = {"fan-a": 50, "fan-b": 100, "fan-c": 150}


def tasks_for(rid: str, plan: ExecutionPlan) -> list[TaskEvent]:
    """The three tasks the router emits for a fan-out-3 ensemble."""
    now = datetime.now(UTC)
    models = list(LATENCIES_MS)
    decision = RoutingDecision(policy_version="bench", route="qa", strategy="ensemble",
                               selected=[ModelRef(provider="openai", model=m) for m in models],
                               decided_at=now)
    scope = scoped_id(Caller().tenant, rid)
    return [TaskEvent(event_id=TaskEvent.make_id(scope, i), request_id=rid, task="qa", part_id=i,
                      parts_total=len(models), provider="openai", model=m,
                      messages=[ChatMessage(role="user", content="how fast is fan-out?")],
                      received_at=now, deadline_at=now + timedelta(seconds=30),
                      decision=decision, plan=plan)
            for i, m in enumerate(models)]


async def tail(bootstrap: str) -> AIOKafkaConsumer:
    """A reader of the reply topic from its current end, on every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=5,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    parts = None
    while not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(RESPONSES)
    tps = [TopicPartition(RESPONSES, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return consumer


async def response_of(reader: AIOKafkaConsumer, rid: str) -> ResponseEvent:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = await reader.getmany(timeout_ms=50)
        for records in batch.values():
            for record in records:
                if record.key.decode() == rid:
                    return ResponseEvent.model_validate(json.loads(record.value))
    raise TimeoutError(f"no response for {rid}")


async def measure(stack: Stack, requests: int) -> list[tuple[float, float, float, float]]:
    # Signed as the router (the stack's key ring): the worker refuses unsigned tasks.
    settings = RuntimeSettings(kafka_bootstrap_servers=stack.bootstrap,
                               signing_keys=stack.signing_keys())
    producer = EventProducer(settings, "bench", role=ROUTER)
    await producer.start()
    reader = await tail(stack.bootstrap)
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="all"))
    samples = []
    try:
        for i in range(requests + 3):  # the first 3 warm connections up and are dropped
            rid = f"bench-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            for task in tasks_for(rid, plan):
                await producer.publish(tasks_topic("openai"), task, key=rid,
                                       event_id=task.event_id)
            response = await response_of(reader, rid)
            elapsed = (time.perf_counter() - started) * 1000
            latencies = [p.latency_ms or 0 for p in response.parts]
            slowest = max(latencies)
            if i >= 3:
                samples.append((elapsed, slowest, elapsed - slowest, sum(latencies)))
    finally:
        await reader.stop()
        await producer.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="fanout-bench-")))
    try:
        stack.start_infra()
        stack.start_simulator()
        stack.start_service("worker-openai", "modelbus_adapter_worker.app",
                            stack.worker_env("openai"))
        stack.start_service("aggregator", "modelbus_aggregator.app",
                            {"MODELBUS_AGGREGATOR_STATE_PREFIX": "bench:agg"})
        stack.wait_ready()
        for model, latency in LATENCIES_MS.items():
            httpx.put(f"{stack.simulator_url}/_sim/models/{model}",
                      json={"latency_ms": latency}).raise_for_status()
        samples = asyncio.run(measure(stack, args.requests))
    finally:
        stack.stop()
    completion = [s[0] for s in samples]
    slowest = [s[1] for s in samples]
    overhead = sorted(s[2] for s in samples)
    print(f"fan-out-3 (providers {sorted(LATENCIES_MS.values())} ms), {len(samples)} requests")
    print(f"completion median {statistics.median(completion):.1f} ms, "
          f"slowest provider median {statistics.median(slowest):.1f} ms")
    print(f"sum of the three provider latencies median "
          f"{statistics.median(s[3] for s in samples):.1f} ms (completion near this sum means "
          f"the parts ran one after another, not in parallel)")
    print(f"completion - slowest provider: median {statistics.median(overhead):.1f} ms, "
          f"p90 {overhead[int(len(overhead) * 0.9) - 1]:.1f} ms")


if __name__ == "__main__":
    main()
