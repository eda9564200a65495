"""The settled check of the worker: once the aggregator marked a request settled, no further
provider attempt is made for it — not the first, not a retry, not a fallback hop — and the
task produces nothing (the executor and handler with a scripted transport; the settled marks
over the machine's Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis
from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.adapters.openai_chat import OpenAIChatAdapter
from modelbus_adapter_worker.errors import from_status
from modelbus_adapter_worker.executor import Executor
from modelbus_adapter_worker.handler import TaskHandler
from modelbus_adapter_worker.idempotency import OutputStore
from modelbus_adapter_worker.outcome import position_id, should_forward
from modelbus_runtime.settled import SettledMarks, settled_key
from modelbus_schemas import Caller, ModelRef, RetrySpec, RoutingDecision, Target, TaskEvent
from modelbus_schemas.identity import scoped_id

NOW = datetime.now(UTC)
OK = Completion("hello", "stop", 10, 20, "gpt-4o-mini-2024")


def make_task(rid: str, tenant: str = "default", model: str = "gpt-4o-mini", **kw) -> TaskEvent:
    decision = RoutingDecision(policy_version="v1", route="t", strategy="single",
                               selected=[ModelRef(provider="openai", model=model)],
                               decided_at=NOW)
    return TaskEvent(event_id=TaskEvent.make_id(scoped_id(tenant, rid), 0), request_id=rid,
                     task="t", part_id=0, parts_total=1, provider="openai", model=model,
                     messages=[{"role": "user", "content": "hi"}], caller=Caller(tenant=tenant),
                     received_at=NOW, decision=decision, **kw)


class ScriptedTransport:
    def __init__(self, *steps) -> None:
        self.steps, self.calls = list(steps), 0

    async def call(self, adapter, request, timeout_s, sink=None):
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        return step


def _rid() -> str:
    return f"settled-{uuid.uuid4().hex[:8]}"


class MarkAfter(ScriptedTransport):
    """A transport that settles the request (as the aggregator would) after ``n`` calls."""

    def __init__(self, marks: SettledMarks, scope: str, n: int, *steps) -> None:
        super().__init__(*steps)
        self.marks, self.scope, self.n = marks, scope, n

    async def call(self, adapter, request, timeout_s, sink=None):
        try:
            return await super().call(adapter, request, timeout_s)
        finally:
            if self.calls == self.n:
                await self.marks.mark(self.scope)


def _executor(transport, marks) -> Executor:
    retry = RetrySpec(max_attempts=5, base_delay_ms=1, max_delay_ms=2)
    return Executor(OpenAIChatAdapter("k"), transport, default_retry=retry, settled=marks)


async def test_a_settled_request_makes_no_call_at_all(redis_client):
    marks, rid = SettledMarks(redis_client), _rid()
    await marks.mark(scoped_id("acme", rid))
    transport = ScriptedTransport(OK)
    run = await _executor(transport, marks).run(make_task(rid, tenant="acme"))
    assert run.stop == "settled" and transport.calls == 0 and run.attempts == []


async def test_retries_stop_once_the_request_is_settled(redis_client):
    marks, rid = SettledMarks(redis_client), _rid()
    transport = MarkAfter(marks, scoped_id("default", rid), 2, from_status(503, "busy"))
    run = await _executor(transport, marks).run(make_task(rid))
    assert run.stop == "settled"
    assert transport.calls == 2, "5 attempts allowed, none made after the mark"
    assert [a.status_code for a in run.attempts] == [503, 503]


async def test_another_tenants_settled_request_of_the_same_id_does_not_stop_this_one(
        redis_client):
    marks, rid = SettledMarks(redis_client), _rid()
    await marks.mark(scoped_id("other", rid))
    transport = ScriptedTransport(OK)
    run = await _executor(transport, marks).run(make_task(rid, tenant="acme"))
    assert run.stop == "ok" and transport.calls == 1


async def test_a_settled_part_is_not_forwarded_to_its_fallback_and_publishes_nothing(
        redis_client):
    marks, rid = SettledMarks(redis_client), _rid()
    task = make_task(rid, fallbacks=[Target(provider="anthropic", model="claude-haiku-4-5")],
                     fallback_on=[503])
    transport = MarkAfter(marks, scoped_id("default", rid), 1, from_status(500, "down"))
    store = OutputStore(redis_client, prefix=f"test:settled:{uuid.uuid4().hex[:6]}")
    handler = TaskHandler(_executor(transport, marks), store)
    assert await handler.handle(task) is None
    assert transport.calls == 1
    assert await store.get(position_id(task)) is None, "nothing kept: a redelivery checks again"


async def test_a_fallback_hop_of_a_settled_request_makes_no_call(redis_client):
    marks, rid = SettledMarks(redis_client), _rid()
    hop = make_task(rid, model="claude-haiku-4-5")
    await marks.mark(scoped_id("default", rid))
    transport = ScriptedTransport(OK)
    run = await _executor(transport, marks).run(hop)
    assert run.stop == "settled" and transport.calls == 0
    assert not should_forward(hop.model_copy(update={"fallbacks": [
        Target(provider="openai", model="gpt-4o")]}), run)


async def test_the_mark_is_one_shared_key_with_a_ttl(redis_client):
    marks, rid = SettledMarks(redis_client, ttl_s=120), _rid()
    scope = scoped_id("acme", rid)
    assert not await marks.is_settled(scope)
    await marks.mark(scope)
    assert await marks.is_settled(scope)
    assert settled_key(scope) == f"modelbus:settled:{{{scope}}}"
    assert 0 < await redis_client.ttl(settled_key(scope)) <= 120


async def test_an_unreachable_redis_lets_attempts_go_ahead():
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        marks = SettledMarks(dead)
        await marks.mark("x")  # logged, not raised
        transport = ScriptedTransport(OK)
        run = await _executor(transport, marks).run(make_task(_rid()))
        assert run.stop == "ok" and transport.calls == 1
    finally:
        await dead.aclose()

