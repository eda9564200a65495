"""The routing engine against the real Redis (no broker): budgets, quotas, idempotency,
the response cache, sticky sessions, circuit state and latency routing on real ModelStats."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from modelbus_router.engine import budget_limits
from modelbus_runtime.model_stats import ModelStats
from modelbus_runtime.response_cache import ResponseCache
from modelbus_schemas import (
    ApprovalDecisionEvent,
    ErrorCode,
    RequestEvent,
    ResponseEvent,
    TaskEvent,
)
from modelbus_schemas.identity import scoped_id

POLICY = """
catalog:
  a: {provider: openai, model: model-a, output_usd_per_mtok: 1.0}
  b: {provider: openai, model: model-b, output_usd_per_mtok: 1.0}
budgets:
  - {scope: team, period: day, limit_usd: 0.005}
quotas:
  - {team: quota-team, per: day, max_requests: 3}
routes:
  pay: {targets: [{model: a}]}
  cached: {targets: [{model: a}], cache: {ttl_s: 60}}
  ab: {strategy: weighted, targets: [{model: a}, {model: b}], sticky_ttl_s: 60}
  fast: {strategy: latency, min_samples: 3, targets: [{model: a}, {model: b}]}
  safe: {strategy: fallback, targets: [{model: a}, {model: b}]}
  checked:
    targets: [{model: a}]
    guardrails: {output: {deny_list: {terms: ["forbidden"]}}}
  gated:
    targets: [{model: a}]
    guardrails: {approval: {metadata: {approval: required}}}
"""


@pytest.fixture
def engine(engine_on):
    return engine_on(POLICY)


def _request(task: str, team: str, rid: str | None = None, **kw) -> RequestEvent:
    kw.setdefault("params", {"max_tokens": 1000})  # reserves 0.001 USD on model a/b
    return RequestEvent(request_id=rid or f"r-{uuid.uuid4().hex[:12]}", task=task,
                        messages=[{"role": "user", "content": "hello"}],
                        caller={"tenant": "t-" + team, "team": team}, **kw)


def _team() -> str:
    return "team-" + uuid.uuid4().hex[:10]


async def test_concurrent_requests_never_overspend_and_the_rest_get_budget_errors(engine):
    team = _team()
    outcomes = await asyncio.gather(*(engine.route(_request("pay", team)) for _ in range(20)))
    dispatched = [o for o in outcomes if o.tasks]
    errors = [o.response for o in outcomes if o.response]
    assert len(dispatched) == 5 and len(errors) == 15
    assert all(e.error.code == ErrorCode.BUDGET_EXCEEDED for e in errors)
    hold = dispatched[0].tasks[0].budget_hold
    assert hold.reserved_usd == pytest.approx(0.001) and "team:" in hold.scope
    # settling with the actual cost frees the rest of the reservation
    await engine.budgets.settle(hold, 0.0)
    assert (await engine.route(_request("pay", team))).tasks


async def test_a_redelivered_request_is_not_charged_or_routed_twice(engine):
    team = _team()
    first = _request("pay", team, rid="idem-" + uuid.uuid4().hex[:8])
    routed = await engine.route(first)
    # crash before publishing: the redelivery routes again under the same hold
    again = await engine.route(first)
    assert again.tasks[0].budget_hold == routed.tasks[0].budget_hold
    assert again.tasks[0].event_id == routed.tasks[0].event_id
    await engine.published(first)
    assert (await engine.route(first)).tasks == [], "published: a redelivery does nothing"
    [limit] = budget_limits(engine.policies.current, first)
    assert await engine.budgets.committed_usd(limit) == pytest.approx(0.001)


async def test_the_same_idempotency_key_on_another_request_is_a_duplicate(engine):
    team, key = _team(), "key-" + uuid.uuid4().hex
    original = await engine.route(_request("pay", team, idempotency_key=key))
    await engine.published(_request("pay", team, rid=original.tasks[0].request_id,
                                    idempotency_key=key))
    dup = await engine.route(_request("pay", team, idempotency_key=key))
    assert not dup.tasks and dup.response.error.code == ErrorCode.DUPLICATE_REQUEST
    assert f"idempotency key {key!r}" in dup.response.error.message
    assert original.tasks[0].request_id not in dup.response.error.message
    assert dup.response.event_id != ResponseEvent.make_id(
        scoped_id(dup.response.tenant, dup.response.request_id)), "never the real answer's id"
    other_tenant = _request("pay", _team(), idempotency_key=key)
    assert (await engine.route(other_tenant)).tasks, "keys are per tenant"


async def test_team_quota_refuses_past_the_limit_and_counts_redelivery_once(engine):
    tenant = "quota-" + uuid.uuid4().hex[:6]
    batch = [RequestEvent(request_id=f"q-{uuid.uuid4().hex[:10]}", task="safe",
                          messages=[{"role": "user", "content": "x"}],
                          caller={"tenant": tenant, "team": "quota-team"}) for _ in range(5)]
    first = await engine.route(batch[0])
    again = await engine.route(batch[0])  # redelivered: counted once
    assert first.tasks and again.tasks
    rest = [await engine.route(r) for r in batch[1:]]
    assert [bool(o.tasks) for o in rest] == [True, True, False, False]
    assert rest[-1].response.error.code == ErrorCode.QUOTA_EXCEEDED
    assert "quota exceeded" in rest[-1].response.error.message


async def test_a_cache_hit_is_answered_without_dispatch_and_never_across_tenants(engine):
    team = _team()
    first = await engine.route(_request("cached", team))
    key = first.decision.decision.cache_key
    assert key and first.tasks
    stored = ResponseEvent(event_id="x:response", request_id=first.tasks[0].request_id,
                           status="ok", output="cached answer", models=["openai/model-a"],
                           cost_usd=0.01, created_at=datetime.now(UTC))
    await ResponseCache(engine.cache.redis).put(key, stored)
    again = _request("cached", team)
    hit = await engine.route(again)
    assert not hit.tasks and hit.response.cache_hit is True
    assert hit.response.output == "cached answer" and hit.response.cost_usd == 0
    assert hit.response.request_id == again.request_id
    assert hit.response.event_id == ResponseEvent.make_id(
        scoped_id(again.caller.tenant, again.request_id))
    assert hit.response.tenant == again.caller.tenant
    elsewhere = await engine.route(_request("cached", _team()))
    assert elsewhere.tasks, "another tenant misses"


async def test_weighted_sessions_stick_to_their_target(engine):
    team, session = _team(), "s-" + uuid.uuid4().hex
    cheap = {"max_tokens": 1}
    models = {(await engine.route(_request("ab", team, session_id=session, params=cheap)))
              .tasks[0].model for _ in range(12)}
    assert len(models) == 1
    spread = {(await engine.route(_request("ab", team, params=cheap))).tasks[0].model
              for _ in range(40)}
    assert spread == {"model-a", "model-b"}, "without a session both are drawn"


async def test_open_circuit_is_skipped(engine):
    class OneOpen:
        async def open_targets(self, targets):
            return {("openai", "model-a")} & set(targets)

    engine.health = OneOpen()
    routed = await engine.route(_request("safe", _team(), params={}))
    assert routed.tasks[0].model == "model-b"
    assert routed.decision.decision.rejected[0].reason == "health: circuit open"


async def test_latency_routing_shifts_to_the_faster_model_and_does_not_flap(engine):
    # fresh model names per run, so samples from earlier runs do not count
    suffix = uuid.uuid4().hex[:6]
    text = POLICY.replace("model-a", f"lat-a-{suffix}").replace("model-b", f"lat-b-{suffix}")
    engine.policies.path.write_text(text)
    assert engine.policies.refresh()
    stats: ModelStats = engine.stats
    a, b = ("openai", f"lat-a-{suffix}"), ("openai", f"lat-b-{suffix}")

    async def route_and_observe(latency: dict[str, float], n: int) -> list[str]:
        chosen = []
        for _ in range(n):
            task = (await engine.route(_request("fast", _team(), params={}))).tasks[0]
            chosen.append(task.model)
            await stats.observe(task.provider, task.model, latency[task.model], 10)
        return chosen

    both_fast = {a[1]: 100.0, b[1]: 110.0}
    warmup = await route_and_observe(both_fast, 8)
    assert {a[1], b[1]} <= set(warmup), "models without samples are explored"
    steady = await route_and_observe(both_fast, 30)
    assert len(set(steady[3:])) == 1, f"within 1.2x the leader keeps the traffic: {steady}"
    leader = steady[-1]
    other = b[1] if leader == a[1] else a[1]
    slowed = {leader: 400.0, other: both_fast[other]}
    shifted = await route_and_observe(slowed, 20)
    assert shifted[-10:] == [other] * 10, f"traffic moved to the faster model: {shifted}"


async def test_tasks_tell_the_aggregator_whether_a_guard_record_exists(engine):
    """The plan's flag spares the aggregator a Redis lookup on unguarded routes."""
    team = _team()
    plain = await engine.route(_request("safe", team))
    checked = await engine.route(_request("checked", team))
    assert [t.plan.guard_record for t in plain.tasks] == [False]
    assert [t.plan.guard_record for t in checked.tasks] == [True]
    task = checked.tasks[0]
    stored = await engine.guard_records.redis.exists(
        f"modelbus:guard:{{{scoped_id(task.tenant, task.request_id)}}}")
    assert stored == 1


def _as(tenant: str, rid: str, text: str = "hello", task: str = "pay", **kw) -> RequestEvent:
    return RequestEvent(request_id=rid, task=task, messages=[{"role": "user", "content": text}],
                        caller={"tenant": tenant, "team": _team()},
                        params={"max_tokens": 1000}, **kw)


async def test_two_tenants_with_one_request_id_get_their_own_task_ids_and_holds(engine):
    rid, n = f"xt-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    one, two = await engine.route(_as(f"one-{n}", rid)), await engine.route(_as(f"two-{n}", rid))
    assert one.tasks and two.tasks
    assert one.tasks[0].event_id == TaskEvent.make_id(scoped_id(f"one-{n}", rid), 0)
    assert two.tasks[0].event_id == TaskEvent.make_id(scoped_id(f"two-{n}", rid), 0)
    assert one.tasks[0].budget_hold.hold_id != two.tasks[0].budget_hold.hold_id


async def test_a_colon_in_a_tenant_name_does_not_collide_with_another_tenants_key(engine):
    n = uuid.uuid4().hex[:6]
    first = _as(f"acme{n}:x", f"colon-a-{n}", idempotency_key="K77")
    second = _as(f"acme{n}", f"colon-b-{n}", idempotency_key="x:K77")
    assert (await engine.route(first)).tasks
    await engine.published(first)
    routed = await engine.route(second)
    assert routed.response is None, routed.response and routed.response.error
    assert routed.tasks, "another tenant's key, however it is spelt, is not a duplicate"


async def test_reusing_a_request_id_for_other_content_is_a_duplicate_naming_only_its_own(
        engine):
    tenant, rid = f"dup-{uuid.uuid4().hex[:6]}", f"dup-{uuid.uuid4().hex[:8]}"
    original = _as(tenant, rid, "original question")
    assert (await engine.route(original)).tasks
    await engine.published(original)
    dup = await engine.route(_as(tenant, rid, "a different question"))
    assert not dup.tasks and dup.response is not None
    assert dup.response.error.code == ErrorCode.DUPLICATE_REQUEST
    assert dup.response.error.message == (
        f"duplicate request: request id {rid!r} was already used by this tenant for a "
        "request with other content")
    assert dup.response.tenant == tenant and dup.response.request_id == rid
    assert dup.response.event_id != ResponseEvent.make_id(scoped_id(tenant, rid))


async def test_parked_requests_are_kept_per_tenant(engine):
    rid, n = f"park-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    gated = {"task": "gated", "metadata": {"approval": "required"}}
    one = await engine.route(_as(f"one-{n}", rid, "tenant one's question", **gated))
    assert one.approval is not None and one.approval.caller.tenant == f"one-{n}"
    assert one.approval.event_id.startswith(scoped_id(f"one-{n}", rid))
    two = await engine.route(_as(f"two-{n}", rid, "tenant two's question", **gated))
    assert two.approval is not None and two.approval.event_id != one.approval.event_id
    parked = await engine.approvals.state(scoped_id(f"two-{n}", rid))
    assert parked.request.messages[0].content == "tenant two's question"
    # a decision that names no tenant cannot tell the two apart: it changes nothing
    decision = ApprovalDecisionEvent(request_id=rid, approved=True, approver="carol",
                                     decided_at=datetime.now(UTC))
    assert (await engine.on_approval(decision)).request is None
    for tenant in (f"one-{n}", f"two-{n}"):
        assert (await engine.approvals.state(scoped_id(tenant, rid))).state == "pending"


async def test_a_decision_without_a_tenant_applies_when_one_tenant_parked_the_id(engine):
    rid, tenant = f"park-{uuid.uuid4().hex[:8]}", f"solo-{uuid.uuid4().hex[:6]}"
    request = _as(tenant, rid, "please", task="gated", metadata={"approval": "required"})
    assert (await engine.route(request)).approval is not None
    decision = ApprovalDecisionEvent(request_id=rid, approved=True, approver="carol",
                                     decided_at=datetime.now(UTC))
    outcome = await engine.on_approval(decision)
    assert outcome.request == request and outcome.tasks
    assert outcome.tasks[0].event_id == TaskEvent.make_id(scoped_id(tenant, rid), 0)
