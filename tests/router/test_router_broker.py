"""The router through a real broker: budgets under concurrency, and latency-based routing
following the simulator's speed. Requests are produced with plain aiokafka (tests.upstream)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.upstream import RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

BUDGET_POLICY = """
catalog:
  metered: {provider: selfhosted, model: metered-model, output_usd_per_mtok: 1.0}
budgets:
  - {scope: team, period: day, limit_usd: 0.1}    # 100 requests of 1000 output tokens
routes:
  metered: {targets: [{model: metered}]}
"""


async def test_two_hundred_concurrent_requests_against_a_budget_for_one_hundred(router_stack):
    stack = router_stack(BUDGET_POLICY)
    run = uuid.uuid4().hex[:8]
    team = f"budget-{run}"
    ids = [f"bud-{run}-{i}" for i in range(200)]
    async with Upstream(stack.bootstrap) as up:
        tasks = await up.tail("modelbus.tasks.selfhosted.v1")
        responses = await up.tail(RESPONSES)
        await asyncio.gather(*(
            up.send(request_json(rid, task="metered", params={"max_tokens": 1000},
                                 caller={"tenant": "acme", "team": team}))
            for rid in ids
        ))
        errors = await responses.collect(lambda r: r.key.decode().startswith(f"bud-{run}-"),
                                         100, timeout=60)
        dispatched = await tasks.collect(lambda r: r.key.decode().startswith(f"bud-{run}-"),
                                         101, timeout=10)
        await tasks.stop()
        await responses.stop()

    bodies = [json.loads(r.value) for r in errors]
    assert all(b["status"] == "error" for b in bodies)
    assert all(b["error"]["code"] == "budget_exceeded" for b in bodies)
    dispatched_ids = {r.key.decode() for r in dispatched}
    assert 100 <= len(dispatched_ids) <= 101, len(dispatched_ids)
    assert len(dispatched) == len(dispatched_ids), "no request dispatched twice"
    assert dispatched_ids.isdisjoint(b["request_id"] for b in bodies)
    assert len(dispatched_ids) + len(bodies) == 200
    holds = [json.loads(r.value)["budget_hold"] for r in dispatched]
    assert all(h["reserved_usd"] == pytest.approx(0.001) for h in holds)


LATENCY_POLICY = """
catalog:
  a: {provider: openai, model: MODEL_A}
  b: {provider: openai, model: MODEL_B}
routes:
  fast: {strategy: latency, min_samples: 3, targets: [{model: a}, {model: b}]}
"""


async def _serve_one(up: Upstream, results, rid: str) -> str:
    """Send one request, wait for its result; the model that served it."""
    await up.send(request_json(rid, task="fast"))
    [result] = await results.collect(lambda r: r.key.decode() == rid, 1, timeout=30)
    body = json.loads(result.value)
    assert body["status"] == "ok", body
    return body["model"]


async def test_latency_routing_follows_the_simulator_and_does_not_flap(router_stack):
    run = uuid.uuid4().hex[:8]
    model_a, model_b = f"lat-a-{run}", f"lat-b-{run}"
    stack = router_stack(
        LATENCY_POLICY.replace("MODEL_A", model_a).replace("MODEL_B", model_b),
        workers=("openai",),
    )
    async with httpx.AsyncClient(base_url=stack.simulator_url) as sim:
        for model, ms in ((model_a, 100), (model_b, 110)):  # within 1.2x of each other
            (await sim.put(f"/_sim/models/{model}", json={"latency_ms": ms})).raise_for_status()
        async with Upstream(stack.bootstrap) as up:
            results = await up.tail("modelbus.results.v1")
            similar = [await _serve_one(up, results, f"lat-{run}-{i}") for i in range(24)]
            steady = similar[8:]
            assert len(set(steady)) == 1, f"within 1.2x the leader keeps the traffic: {similar}"
            leader = steady[-1]
            other = model_b if leader == model_a else model_a
            (await sim.put(f"/_sim/models/{leader}", json={"latency_ms": 600})) \
                .raise_for_status()
            slowed = [await _serve_one(up, results, f"lat-{run}-s{i}") for i in range(16)]
            await results.stop()
    assert slowed[-8:] == [other] * 8, f"traffic moved to the faster model: {slowed}"
