"""The engine over the machine's Redis with an in-memory outbox: one response per request
through duplicates, redeliveries, races, restarts, crashes mid-publish and deadlines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from modelbus_aggregator.deadlines import DeadlineScheduler
from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.responses import single_response
from modelbus_aggregator.settlement import Settlement
from modelbus_aggregator.state import Decision, FanInStore
from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import (
    BudgetHold,
    CascadeTier,
    CheckSpec,
    EnsembleSpec,
    ExecutionPlan,
    Target,
)
from modelbus_schemas.identity import scoped_id

from services.aggregator.tests.aggregator_factories import T0, make_result

ENSEMBLE = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="majority"))


class Outbox:
    def __init__(self, fail_responses: int = 0) -> None:
        self.tasks, self.responses = [], []
        self.fail_responses = fail_responses

    async def publish_task(self, task, trace):
        self.tasks.append(task)

    async def was_published(self, topic, response, since_ms):
        return any(t == topic and r.event_id == response.event_id
                   for t, r in self.responses + getattr(self, "published_by_dead", []))

    async def publish_response(self, topic, response, trace):
        await asyncio.sleep(0.01)  # let concurrent handlers interleave
        if self.fail_responses:
            self.fail_responses -= 1
            raise TransientInfraError("broker unavailable")
        self.responses.append((topic, response))


def _agg(redis_client, prefix, outbox, lease_ms=10_000, **kw) -> Aggregator:
    return Aggregator(FanInStore(redis_client, prefix, lease_ms), outbox,
                      clock=lambda: T0 + timedelta(seconds=1), **kw)


def _parts(rid: str, plan=ENSEMBLE, texts=("a", "b", "b")):
    return [make_result(rid, part=i, total=len(texts), text=t, plan=plan)
            for i, t in enumerate(texts)]


async def test_duplicates_and_redeliveries_yield_one_response(redis_client, prefix):
    outbox = Outbox()
    agg = _agg(redis_client, prefix, outbox)
    a, b, c = _parts("dup")
    for result in (a, b, a, b, c, c, a):
        await agg.on_result(result)
    assert len(outbox.responses) == 1
    topic, response = outbox.responses[0]
    assert topic == "modelbus.responses.v1" and response.output == "b"
    assert response.event_id == f"{scoped_id('default', 'dup')}:response" and len(response.parts) == 3


async def test_concurrent_handlers_and_the_deadline_timer_respond_once(redis_client, prefix):
    outbox = Outbox()
    first, second = _agg(redis_client, prefix, outbox), _agg(redis_client, prefix, outbox)
    a, b, c = _parts("race")
    await first.on_result(a)
    await second.on_result(b)

    async def retrying(agg, result):
        while True:  # the consumer retries PublishInProgress in place like this
            try:
                return await agg.on_result(result)
            except TransientInfraError:
                await asyncio.sleep(0.01)

    scope = scoped_id("default", "race")
    await asyncio.gather(retrying(first, c), retrying(second, c), first.on_deadline(scope),
                         second.on_deadline(scope))
    assert len(outbox.responses) == 1


async def test_state_survives_a_restart(redis_client, prefix):
    outbox = Outbox()
    a, b, c = _parts("restart")
    await _agg(redis_client, prefix, outbox).on_result(a)
    await _agg(redis_client, prefix, outbox).on_result(b)
    await _agg(redis_client, prefix, outbox).on_result(c)  # a fresh process
    [(_, response)] = outbox.responses
    assert [p.part_id for p in response.parts] == [0, 1, 2]


async def test_a_failed_publish_is_retried_with_the_same_response(redis_client, prefix):
    outbox = Outbox(fail_responses=1)
    agg = _agg(redis_client, prefix, outbox)
    a, b, c = _parts("crash")
    await agg.on_result(a)
    await agg.on_result(b)
    with pytest.raises(TransientInfraError):
        await agg.on_result(c)
    await agg.on_result(c)  # the redelivery
    assert len(outbox.responses) == 1 and outbox.responses[0][1].output == "b"


async def test_a_claim_left_by_a_killed_process_is_taken_over_after_its_lease(
        redis_client, prefix):
    a, b, c = _parts("killed")
    store = FanInStore(redis_client, prefix, lease_ms=200)
    for r in (a, b):
        await store.record(r)
    # a process claimed a response and died before publishing it
    stored = single_response(a)
    claim = await store.claim(scoped_id("default", "killed"), Decision(reply_to="replies.x", response=stored))
    assert claim.state == "claimed"
    outbox = Outbox()
    after = _agg(redis_client, prefix, outbox, lease_ms=200)
    with pytest.raises(TransientInfraError):  # still leased: retried in place
        await after.on_result(c)
    await asyncio.sleep(0.25)
    await after.on_result(c)
    assert outbox.responses == [("replies.x", stored)]


async def test_a_takeover_does_not_republish_what_the_dead_process_published(
        redis_client, prefix):
    a, b, c = _parts("published-then-killed")
    store = FanInStore(redis_client, prefix, lease_ms=200)
    for r in (a, b):
        await store.record(r)
    stored = single_response(a)
    claim = await store.claim(scoped_id("default", "published-then-killed"),
                              Decision(reply_to="replies.x", response=stored))
    assert claim.state == "claimed" and claim.decision.decided_at_ms is not None
    outbox = Outbox()
    outbox.published_by_dead = [("replies.x", stored)]  # it published, then died
    after = _agg(redis_client, prefix, outbox, lease_ms=200)
    await asyncio.sleep(0.25)
    await after.on_result(c)
    assert outbox.responses == [], "the reply topic already has it: not published twice"
    assert (await store.load(scoped_id("default", "published-then-killed"))).done


async def test_deadline_gives_a_partial_response_through_the_timer(redis_client, prefix):
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="all",
                                                                deadline_ms=100))
    now = datetime.now(UTC)
    parts = [make_result("late", part=i, total=3, plan=plan, received_at=now)
             for i in range(2)]
    outbox = Outbox()
    agg = _agg(redis_client, prefix, outbox)
    for r in parts:
        await agg.on_result(r)
    assert outbox.responses == []
    timer = DeadlineScheduler(agg.store, agg.on_deadline, tick_s=0.02)
    timer.start()
    try:
        for _ in range(200):
            if outbox.responses:
                break
            await asyncio.sleep(0.02)
    finally:
        await timer.stop()
    [(_, response)] = outbox.responses
    assert response.status == "partial" and response.missing_parts == [2]
    far_future = int(datetime.now(UTC).timestamp() * 1000) + 10**6
    assert scoped_id("default", "late") not in await agg.store.due(far_future, limit=10**6)
    await agg.on_result(make_result("late", part=2, total=3, plan=plan, received_at=now))
    assert len(outbox.responses) == 1


async def test_a_redelivered_cascade_result_dispatches_the_next_tier_once(redis_client, prefix):
    plan = ExecutionPlan(mode="cascade", cascade=[
        CascadeTier(target=Target(provider="openai", model="small"),
                    check=CheckSpec(kind="regex", pattern="^yes$")),
        CascadeTier(target=Target(provider="gemini", model="big"))])
    outbox = Outbox()
    agg = _agg(redis_client, prefix, outbox)
    tier0 = make_result("casc", plan=plan, text="no", model="small")
    await agg.on_result(tier0)
    await agg.on_result(tier0)
    assert [t.event_id for t in outbox.tasks] == [f"{scoped_id('default', 'casc')}:task:0:1"]
    tier1 = make_result("casc", plan=plan.model_copy(update={"step": 1}), text="yes",
                        model="big")
    await agg.on_result(tier1)
    [(_, response)] = outbox.responses
    assert response.path == ["openai/small", "gemini/big"] and response.output == "yes"


async def test_budget_is_settled_and_ok_responses_cached(redis_client, prefix):
    calls = []

    class Budgets:
        async def settle(self, hold, actual_usd):
            calls.append(("settle", hold.hold_id, actual_usd))

    class Cache:
        async def put(self, key, response, ttl_s):
            calls.append(("put", key, response.output, ttl_s))

    hold = BudgetHold(hold_id="h1", scope="acme", reserved_usd=0.5)
    agg = _agg(redis_client, prefix, Outbox(), after_response=Settlement(Budgets(), Cache(), 60))
    await agg.on_result(make_result("paid", budget_hold=hold, cache_key="ck", cost_usd=0.02))
    await agg.on_result(make_result("failed", status="error", budget_hold=hold, cache_key="c2",
                                    cost_usd=0.01))
    assert calls == [("settle", "h1", 0.02), ("put", "ck", "answer 0", 60),
                     ("settle", "h1", 0.01)]


async def test_redis_down_is_a_transient_error(prefix):
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    agg = _agg(dead, prefix, Outbox())
    with pytest.raises(TransientInfraError):
        await agg.on_result(_parts("down")[0])
    await dead.aclose()
