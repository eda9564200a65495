"""Tenant-scoped identity in the worker: two tenants that picked the same request id get
different result ids, forward ids and idempotency keys, and neither tenant's task is ever
answered with the other's stored output (the store is the real Redis; the executor is a
stand-in that answers with the task's own prompt)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.executor import TargetRun
from modelbus_adapter_worker.handler import TaskHandler
from modelbus_adapter_worker.idempotency import OutputStore
from modelbus_adapter_worker.outcome import next_task, position_id, result_of
from modelbus_schemas import Caller, ModelRef, RoutingDecision, Target, TaskEvent
from modelbus_schemas.identity import scoped_id

NOW = datetime.now(UTC)


def _task(tenant: str, rid: str, text: str, *, event_id: str | None = None, **kw) -> TaskEvent:
    decision = RoutingDecision(policy_version="v1", route="t", strategy="single",
                               selected=[ModelRef(provider="openai", model="gpt-4o")],
                               decided_at=NOW)
    return TaskEvent(
        event_id=event_id or TaskEvent.make_id(scoped_id(tenant, rid), 0), request_id=rid,
        task="t", part_id=0, parts_total=1, provider="openai", model="gpt-4o",
        messages=[{"role": "user", "content": text}], caller=Caller(tenant=tenant),
        received_at=NOW, decision=decision, **kw)


class EchoExecutor:
    """Answers every task with its last message, counting the calls it made."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, task: TaskEvent, sink=None) -> TargetRun:
        self.calls += 1
        text = task.messages[-1].content
        return TargetRun("ok", completion=Completion(text, "stop", 1, 1, task.model))


def test_worker_ids_of_two_tenants_with_one_request_id_differ_and_results_carry_the_tenant():
    one, two = _task("t-one", "xt-0001", "a"), _task("t-two", "xt-0001", "b")
    run = TargetRun("ok", completion=Completion("x", "stop", 1, 1, "gpt-4o"))
    first, second = result_of(one, run), result_of(two, run)
    assert (first.tenant, second.tenant) == ("t-one", "t-two")
    assert first.event_id == "5:t-one:xt-0001:result:0"
    assert second.event_id == "5:t-two:xt-0001:result:0"
    failed = TargetRun("retries_exhausted", attempts=[])
    backups = [Target(provider="anthropic", model="claude-haiku-4-5")]
    fwd_one = next_task(one.model_copy(update={"fallbacks": backups}), failed)
    fwd_two = next_task(two.model_copy(update={"fallbacks": backups}), failed)
    assert fwd_one.event_id == "5:t-one:xt-0001:task:0:0:1"
    assert fwd_two.event_id == "5:t-two:xt-0001:task:0:0:1"


def test_worker_position_id_comes_from_the_tasks_fields_not_its_event_id():
    legacy = "xt-0001:task:0"  # the same free-text id on both tenants' tasks
    one = _task("t-one", "xt-0001", "a", event_id=legacy)
    two = _task("t-two", "xt-0001", "b", event_id=legacy)
    assert position_id(one) == "5:t-one:xt-0001:task:0"
    assert position_id(two) == "5:t-two:xt-0001:task:0"
    # a colon in the tenant cannot make one tenant's key another's
    assert position_id(_task("acme:x", "K77", "a")) != position_id(_task("acme", "x:K77", "a"))


async def test_worker_store_never_answers_one_tenant_with_another_tenants_output(redis_client):
    rid = f"xt-{uuid.uuid4().hex[:8]}"
    legacy = f"{rid}:task:0"  # ids as a router that does not scope them would send
    executor = EchoExecutor()
    handler = TaskHandler(executor, OutputStore(redis_client, prefix=f"test:wk:{rid}"))
    out_one = await handler.handle(_task("t-one", rid, "alpha apples", event_id=legacy))
    out_two = await handler.handle(_task("t-two", rid, "bravo bananas", event_id=legacy))
    again = await handler.handle(_task("t-two", rid, "bravo bananas", event_id=legacy))
    one, two = orjson.loads(out_one.value), orjson.loads(out_two.value)
    assert executor.calls == 2, "the second tenant's task was answered from the store"
    assert (one["tenant"], one["text"]) == ("t-one", "alpha apples")
    assert (two["tenant"], two["text"]) == ("t-two", "bravo bananas")
    assert out_one.event_id != out_two.event_id
    assert again == out_two  # a redelivery of the same tenant's task is still deduplicated
    keys = sorted(k.decode() for k in await redis_client.keys(f"test:wk:{rid}:*"))
    assert keys == [f"test:wk:{rid}:5:t-one:{rid}:task:0", f"test:wk:{rid}:5:t-two:{rid}:task:0"]
    await redis_client.delete(*keys)
