"""Two tenants that picked the same request id, on the real broker: tasks of ``t-one`` and
``t-two`` with one request id and different prompts are in flight at once through a real
worker and the aggregator, and each tenant's response carries its own text (the simulator
echoes the prompt). And the takeover's read-back of the reply topic counts only a signed
response of the same (tenant, request id)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from modelbus_aggregator.published import response_on_topic
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import EnsembleSpec, ExecutionPlan, ResponseEvent
from modelbus_schemas.cloudevents import ce_headers
from modelbus_schemas.identity import scoped_id

from tests.aggregator.conftest import responses_of, tasks_for
from tests.upstream import RESPONSES

pytestmark = pytest.mark.e2e

PROMPTS = {"t-one": "alpha apples from tenant one", "t-two": "bravo bananas from tenant two"}


async def _both_tenants(bus, name: str, models: list[str], plan: ExecutionPlan):
    rid = bus.rid(name)
    reader = await bus.replies()
    try:
        tasks = [t for tenant, text in PROMPTS.items()
                 for t in tasks_for(rid, models, plan, text=text, tenant=tenant)]
        await bus.publish(tasks)
        got = await responses_of(reader, rid, count=2)
        await asyncio.sleep(0.5)  # anything more would be a duplicate or a leak
        got += await responses_of(reader, rid, timeout=0.5)
    finally:
        await reader.stop()
    answers = {r.tenant: r for r in got}
    assert len(got) == 2 and sorted(answers) == ["t-one", "t-two"], [
        (r.tenant, r.output) for r in got]
    return rid, answers


def _assert_own_text(rid: str, answers: dict[str, ResponseEvent]) -> None:
    for tenant, response in answers.items():
        mine, theirs = PROMPTS[tenant].split()[0], next(
            p for t, p in PROMPTS.items() if t != tenant).split()[0]
        assert response.status == "ok", response
        assert mine in response.output and theirs not in response.output, (
            tenant, response.output)
        assert response.event_id == ResponseEvent.make_id(scoped_id(tenant, rid))


async def test_two_tenants_one_request_id_single_part_each_get_their_own_text(bus):
    bus.behave("tn-single", latency_ms=300)  # both calls in flight at once
    rid, answers = await _both_tenants(bus, "tenants-single", ["tn-single"], ExecutionPlan())
    _assert_own_text(rid, answers)


async def test_two_tenants_one_request_id_fan_in_each_get_their_own_text(bus):
    for model in ("tn-a", "tn-b"):
        bus.behave(model, latency_ms=300)
    plan = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="all"))
    rid, answers = await _both_tenants(bus, "tenants-all", ["tn-a", "tn-b"], plan)
    _assert_own_text(rid, answers)
    for response in answers.values():
        assert response.models == ["openai/tn-a", "openai/tn-b"]


async def test_read_back_counts_only_a_signed_response_of_the_same_tenant(bus):
    settings = RuntimeSettings(kafka_bootstrap_servers=bus.stack.bootstrap)
    ring = settings.signing_ring()
    rid = bus.rid("readback")
    mine, other = (ResponseEvent.make_id(scoped_id(t, rid)) for t in ("t-one", "t-two"))
    since = int(time.time() * 1000) - 1000
    producer = EventProducer(settings, "aggregator")
    await producer.start()
    try:
        # a forged, unsigned copy with the right key and id; t-two's genuine response
        await producer.publish_raw(RESPONSES, rid.encode(), b"{}", ce_headers(
            event_id=mine, ce_type=ResponseEvent.CE_TYPE, source="/forger"))
        await producer.publish(RESPONSES, ResponseEvent(
            event_id=other, request_id=rid, tenant="t-two", status="ok", output="two",
            created_at=datetime.now(UTC)), key=rid, event_id=other)
        assert not await response_on_topic(bus.stack.bootstrap, RESPONSES, rid, mine, since,
                                           ring)
        # without the ring check the forged copy would have suppressed the real response
        assert await response_on_topic(bus.stack.bootstrap, RESPONSES, rid, mine, since)
        await producer.publish(RESPONSES, ResponseEvent(
            event_id=mine, request_id=rid, tenant="t-one", status="ok", output="one",
            created_at=datetime.now(UTC)), key=rid, event_id=mine)
        assert await response_on_topic(bus.stack.bootstrap, RESPONSES, rid, mine, since, ring)
    finally:
        await producer.stop()
