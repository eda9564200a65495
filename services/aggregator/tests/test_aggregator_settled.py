"""The aggregator writes a request's settled mark (the key the workers check before each
attempt) once its answer is fixed — quorum reached, deadline passed, cascade satisfied —
and not before (the engine over the machine's Redis with an in-memory outbox)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.state import FanInStore
from modelbus_runtime.settled import SettledMarks
from modelbus_schemas import CascadeTier, CheckSpec, EnsembleSpec, ExecutionPlan, Target
from modelbus_schemas.identity import scoped_id

from services.aggregator.tests.aggregator_factories import T0, make_result
from services.aggregator.tests.aggregator_factories import RecordingOutbox as Outbox


def _agg(redis_client, prefix, outbox) -> Aggregator:
    return Aggregator(FanInStore(redis_client, prefix), outbox, settled=SettledMarks(redis_client),
                      clock=lambda: T0 + timedelta(seconds=1))


def _rid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_a_quorum_settles_the_request_for_the_parts_still_running(redis_client, prefix):
    outbox, marks, rid = Outbox(), SettledMarks(redis_client), _rid("quorum")
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="first_success"))
    agg = _agg(redis_client, prefix, outbox)
    await agg.on_result(make_result(rid, part=0, total=3, status="error", plan=plan,
                                    tenant="acme"))
    assert not await marks.is_settled(scoped_id("acme", rid)), "one failure settles nothing"
    await agg.on_result(make_result(rid, part=1, total=3, plan=plan, tenant="acme"))
    assert len(outbox.responses) == 1
    assert await marks.is_settled(scoped_id("acme", rid))
    assert not await marks.is_settled(scoped_id("default", rid)), "scoped by tenant"
    # the dropped part's late result changes nothing
    await agg.on_result(make_result(rid, part=2, total=3, plan=plan, tenant="acme"))
    assert len(outbox.responses) == 1


async def test_a_passed_deadline_settles_the_request(redis_client, prefix):
    outbox, marks, rid = Outbox(), SettledMarks(redis_client), _rid("deadline")
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="majority"))
    agg = _agg(redis_client, prefix, outbox)
    await agg.on_result(make_result(rid, part=0, total=3, plan=plan))
    assert not await marks.is_settled(scoped_id("default", rid))
    await agg.on_deadline(scoped_id("default", rid))
    assert [r.status for r in outbox.responses] == ["partial"]
    assert await marks.is_settled(scoped_id("default", rid))


async def test_a_satisfied_cascade_settles_and_an_escalation_does_not(redis_client, prefix):
    outbox, marks, rid = Outbox(), SettledMarks(redis_client), _rid("cascade")
    check = CheckSpec(kind="regex", pattern="Paris")
    plan = ExecutionPlan(mode="cascade", cascade=[
        CascadeTier(target=Target(provider="openai", model="m0"), check=check),
        CascadeTier(target=Target(provider="openai", model="m1"))])
    agg = _agg(redis_client, prefix, outbox)
    await agg.on_result(make_result(rid, text="London", plan=plan))
    assert len(outbox.tasks) == 1 and not outbox.responses  # escalated to tier 1
    assert not await marks.is_settled(scoped_id("default", rid))
    await agg.on_result(make_result(rid, text="Paris", model="m1",
                                    plan=plan.model_copy(update={"step": 1})))
    assert len(outbox.responses) == 1
    assert await marks.is_settled(scoped_id("default", rid))
