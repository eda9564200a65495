"""Tenant-scoped identity in the aggregator, over the machine's Redis with an in-memory
outbox: two tenants that picked the same request id, their results interleaved, each get
their own response (own text, own tenant, own id); the fan-in keys, the deadline index, the
next-step task ids and the guard record are all per (tenant, request id)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.output_guards import OutputGuardian
from modelbus_aggregator.state import FanInStore
from modelbus_router.guardrails.handoff import GuardRecords, build_record
from modelbus_router.guardrails.spec import OutputGuards
from modelbus_schemas import (
    CascadeTier,
    CheckSpec,
    EnsembleSpec,
    ExecutionPlan,
    GuardrailFinding,
    ResponseEvent,
    Target,
)
from modelbus_schemas.identity import scoped_id

from services.aggregator.tests.aggregator_factories import T0, make_result
from services.aggregator.tests.aggregator_factories import RecordingOutbox as Outbox

TENANTS = ("t-one", "t-two")
ALL = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="all"))



def _agg(redis_client, prefix, outbox, **kw) -> Aggregator:
    return Aggregator(FanInStore(redis_client, prefix, 10_000), outbox,
                      clock=lambda: T0 + timedelta(seconds=1), **kw)


def _by_tenant(responses: list[ResponseEvent]) -> dict[str, ResponseEvent]:
    answers = {r.tenant: r for r in responses}
    assert len(answers) == len(responses), [r.tenant for r in responses]
    return answers


async def test_two_tenants_interleaved_on_one_request_id_each_get_their_own_response(
        redis_client, prefix):
    rid, outbox = f"xt-{uuid.uuid4().hex[:6]}", Outbox()
    agg = _agg(redis_client, prefix, outbox)
    words = {"t-one": ("alpha", "apples"), "t-two": ("bravo", "bananas")}
    for part in (0, 1):  # t-one part 0, t-two part 0, t-one part 1, t-two part 1
        for tenant in TENANTS:
            await agg.on_result(make_result(rid, part=part, total=2, plan=ALL, tenant=tenant,
                                            text=words[tenant][part]))
    answers = _by_tenant(outbox.responses)
    assert sorted(answers) == list(TENANTS)
    for tenant, (first, second) in words.items():
        response = answers[tenant]
        assert response.request_id == rid and response.status == "ok"
        assert first in response.output and second in response.output, response.output
        others = [w for t, ws in words.items() if t != tenant for w in ws]
        assert not any(w in response.output for w in others), response.output
        assert response.event_id == ResponseEvent.make_id(scoped_id(tenant, rid))
    # each tenant's request is finished under its own scope; nothing under the bare id
    for tenant in TENANTS:
        assert await redis_client.exists(f"{prefix}:done:{{{scoped_id(tenant, rid)}}}")
    assert not await redis_client.exists(f"{prefix}:done:{{{rid}}}")


async def test_a_deadline_answers_only_its_own_tenants_request(redis_client, prefix):
    rid, outbox = f"dl-{uuid.uuid4().hex[:6]}", Outbox()
    now = datetime.now(UTC)
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="all",
                                                                deadline_ms=60_000))
    agg = _agg(redis_client, prefix, outbox)
    for tenant in TENANTS:
        await agg.on_result(make_result(rid, part=0, total=2, plan=plan, tenant=tenant,
                                        text=f"from {tenant}", received_at=now))
    far = int(now.timestamp() * 1000) + 10**8
    due = await agg.store.due(far, limit=10**6)
    assert {scoped_id(t, rid) for t in TENANTS} <= set(due) and rid not in due
    await agg.on_deadline(scoped_id("t-two", rid))
    [response] = outbox.responses
    assert (response.tenant, response.status) == ("t-two", "partial")
    assert "from t-two" in response.output and "t-one" not in response.output
    assert scoped_id("t-one", rid) in await agg.store.due(far, limit=10**6)


async def test_next_step_tasks_are_scoped_by_the_tenant(redis_client, prefix):
    rid, outbox = f"cs-{uuid.uuid4().hex[:6]}", Outbox()
    plan = ExecutionPlan(mode="cascade", cascade=[
        CascadeTier(target=Target(provider="openai", model="small"),
                    check=CheckSpec(kind="regex", pattern="^yes$")),
        CascadeTier(target=Target(provider="gemini", model="big"))])
    agg = _agg(redis_client, prefix, outbox)
    for tenant in TENANTS:
        await agg.on_result(make_result(rid, plan=plan, text="no", model="small", tenant=tenant))
    assert [(t.tenant, t.event_id) for t in outbox.tasks] == [
        (tenant, f"{scoped_id(tenant, rid)}:task:0:1") for tenant in TENANTS]


async def test_a_guard_record_applies_only_to_its_own_tenants_response(redis_client, prefix):
    rid, outbox = f"og-{uuid.uuid4().hex[:6]}", Outbox()
    redacted = GuardrailFinding(guard="pii", stage="input", mode="mutate", action="redacted",
                                categories={"card": 1})
    # t-one's record, written as the router writes it: under t-one's scoped id
    await GuardRecords(redis_client, ttl_s=600).save(scoped_id("t-one", rid), build_record(
        OutputGuards.model_validate({}), [redacted], {"[CARD_1]": "4111 1111 1111 1111"}, None))
    agg = _agg(redis_client, prefix, outbox, guards=OutputGuardian(redis_client))
    for tenant in TENANTS:
        await agg.on_result(make_result(rid, origin=None, text="charged [CARD_1]",
                                        tenant=tenant))
    answers = _by_tenant(outbox.responses)
    assert answers["t-one"].output == "charged 4111 1111 1111 1111"
    assert answers["t-one"].guardrails == [redacted]
    assert answers["t-two"].output == "charged [CARD_1]", "t-one's card reached t-two"
    assert answers["t-two"].guardrails == []
