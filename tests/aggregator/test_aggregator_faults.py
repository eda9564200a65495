"""Faults: the aggregator SIGKILLed in the middle of a 3-way fan-in, and a provider that
hangs while the others answer — exactly one response either way, nothing hangs."""

from __future__ import annotations

import asyncio
import time

import pytest
from modelbus_schemas import EnsembleSpec, ExecutionPlan
from modelbus_schemas.identity import scoped_id

from tests.aggregator.conftest import responses_of, tasks_for

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


async def _wait_parts(bus, rid: str, count: int, timeout: float = 30.0) -> int:
    key = f"{bus.prefix}:parts:{{{scoped_id('default', rid)}}}"  # the fan-in state's key
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        stored = await bus.redis.hlen(key)
        if stored >= count:
            break
        await asyncio.sleep(0.05)
    return stored


async def test_sigkill_mid_fan_in_still_gives_exactly_one_response(bus):
    bus.behave("kill-a", reply="blue")
    bus.behave("kill-b", reply="green")
    bus.behave("kill-slow", reply="blue", latency_ms=6000)
    rid = bus.rid("kill")
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="majority"))
    reader = await bus.replies()
    try:
        await bus.publish(tasks_for(rid, ["kill-a", "kill-b", "kill-slow"], plan))
        assert await _wait_parts(bus, rid, 2) == 2, "two parts stored before the kill"
        victim = next(c for c in bus.stack.group.children if c.name == "aggregator")
        victim.kill()  # SIGKILL: no drain, no commit
        assert victim.proc.returncode == -9
        assert await responses_of(reader, rid, timeout=1.0) == []
        bus.start_aggregator("aggregator-restarted")
        got = await responses_of(reader, rid, timeout=60)
        await asyncio.sleep(2.0)  # a duplicate would show up now
        got += await responses_of(reader, rid, timeout=1.0)
    finally:
        await reader.stop()
    assert len(got) == 1, f"expected exactly one response, got {len(got)}"
    response = got[0]
    assert response.status == "ok" and response.output == "blue"
    assert [p.status for p in response.parts] == ["ok", "ok", "ok"]
    assert response.models == ["openai/kill-a", "openai/kill-slow"]


async def test_a_hanging_provider_gives_a_partial_response_by_the_deadline(bus):
    bus.behave("hang-a", reply="alpha")
    bus.behave("hang-b", reply="beta")
    bus.behave("hang-c", failure_rate=1.0, failure={"kind": "hang", "hang_s": 600})
    rid = bus.rid("hang")
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="all",
                                                                deadline_ms=2000))
    reader = await bus.replies()
    try:
        await bus.publish(tasks_for(rid, ["hang-a", "hang-b", "hang-c"], plan,
                                    deadline_s=300))
        got = await responses_of(reader, rid, timeout=30)
    finally:
        await reader.stop()
    assert len(got) == 1
    response = got[0]
    assert response.status == "partial" and response.missing_parts == [2]
    assert response.output == "[openai/hang-a]\nalpha\n\n[openai/hang-b]\nbeta"
    missing = [p for p in response.parts if p.status == "missing"]
    # results of an "all" ensemble carry no origin task, so the part is named by its id
    assert [p.part_id for p in missing] == [2]
    # sent because the 2 s deadline passed — not early, and not when the hang ended (600 s)
    # nor at the task deadline (300 s)
    assert 2000 <= response.latency_ms < 60_000
