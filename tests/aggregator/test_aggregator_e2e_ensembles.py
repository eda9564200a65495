"""Every ensemble strategy end to end: tasks on the broker → real worker → simulator over
HTTP → results → aggregator → one response on the reply topic."""

from __future__ import annotations

import asyncio

import pytest
from modelbus_schemas import CheckSpec, EnsembleSpec, ExecutionPlan, Target

from tests.aggregator.conftest import responses_of, tasks_for

pytestmark = pytest.mark.e2e


def _plan(strategy: str, **kw) -> ExecutionPlan:
    return ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy=strategy, **kw))


async def _ask(bus, name: str, models: list[str], plan: ExecutionPlan, **kw):
    rid = bus.rid(name)
    reader = await bus.replies()
    try:
        await bus.publish(tasks_for(rid, models, plan, **kw))
        got = await responses_of(reader, rid)
        await asyncio.sleep(0.5)  # anything after the first would be a duplicate
        got += await responses_of(reader, rid, timeout=0.5)
    finally:
        await reader.stop()
    assert len(got) == 1, f"expected exactly one response, got {len(got)}"
    return got[0]


async def test_first_success_answers_with_the_first_model_that_succeeds(bus):
    bus.behave("fs-broken", fail_first=1000, failure={"kind": "status", "status": 400})
    bus.behave("fs-slow", latency_ms=3000, reply="slow answer")
    bus.behave("fs-fast", latency_ms=20, reply="fast answer")
    response = await _ask(bus, "first", ["fs-broken", "fs-fast", "fs-slow"],
                          _plan("first_success"))
    assert response.status == "ok" and response.output == "fast answer"
    assert response.models == ["openai/fs-fast"]
    assert response.missing_parts == [2]  # it did not wait for the slow part
    assert {p.part_id: p.status for p in response.parts} == {0: "error", 1: "ok", 2: "missing"}


async def test_majority_votes_over_normalised_answers(bus):
    bus.behave("mj-a", reply="Paris")
    bus.behave("mj-b", reply="Lyon")
    bus.behave("mj-c", reply="  paris. ")
    response = await _ask(bus, "majority", ["mj-a", "mj-b", "mj-c"], _plan("majority"))
    assert response.status == "ok" and response.output == "Paris"
    assert response.models == ["openai/mj-a", "openai/mj-c"]
    assert response.policy_version == "agg-test-v1"
    assert response.usage.output_tokens == 3 and response.latency_ms > 0


async def test_all_merges_labelled_answers(bus):
    for model, reply in (("al-a", "alpha"), ("al-b", "beta"), ("al-c", "gamma")):
        bus.behave(model, reply=reply, latency_ms=10)
    response = await _ask(bus, "all", ["al-a", "al-b", "al-c"], _plan("all"))
    assert response.output == "[openai/al-a]\nalpha\n\n[openai/al-b]\nbeta\n\n[openai/al-c]\ngamma"
    assert len(response.models) == 3 and [p.status for p in response.parts] == ["ok"] * 3


async def test_best_score_picks_the_answer_the_validator_accepts(bus):
    bus.behave("bs-a", reply="The city is Paris")
    bus.behave("bs-b", reply='{"city": "Paris"}')
    bus.behave("bs-c", reply='{"country": "France"}')
    validator = CheckSpec(kind="json_schema", json_schema={
        "type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}})
    response = await _ask(bus, "best", ["bs-a", "bs-b", "bs-c"],
                          _plan("best_score", score=validator))
    assert response.output == '{"city": "Paris"}' and response.models == ["openai/bs-b"]


async def test_judge_model_picks_the_output(bus):
    for model, reply in (("jd-a", "one answer"), ("jd-b", "two answer"), ("jd-c", "three")):
        bus.behave(model, reply=reply)
    bus.behave("jd-judge", reply="Candidate 2 is the best.")
    plan = _plan("judge", judge=Target(provider="openai", model="jd-judge"))
    response = await _ask(bus, "judge", ["jd-a", "jd-b", "jd-c"], plan)
    assert response.status == "ok" and response.output == "two answer"
    assert response.models == ["openai/jd-b"]
    judge = [p for p in response.parts if p.part_id == 3]
    assert [(j.model, j.status) for j in judge] == [("jd-judge", "ok")]
    assert bus.calls("jd-judge") == 1


async def test_quorum_answers_without_waiting_for_the_slowest(bus):
    bus.behave("qu-a", reply="42")
    bus.behave("qu-b", reply="42")
    bus.behave("qu-slow", reply="42", latency_ms=5000)
    response = await _ask(bus, "quorum", ["qu-a", "qu-b", "qu-slow"],
                          _plan("majority", quorum=2))
    assert response.status == "ok" and response.output == "42"
    assert response.missing_parts == [2]
