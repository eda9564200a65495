"""Cascades and chains end to end: the aggregator publishes the next tier/stage itself
(through the real worker and simulator) and answers once with the path taken."""

from __future__ import annotations

import asyncio

import pytest
from modelbus_schemas import CascadeTier, ChainStage, CheckSpec, ExecutionPlan, Target

from tests.aggregator.conftest import responses_of, tasks_for

pytestmark = pytest.mark.e2e


def _t(model: str) -> Target:
    return Target(provider="openai", model=model)


async def _ask(bus, name: str, first_model: str, plan: ExecutionPlan, text: str = "hello"):
    rid = bus.rid(name)
    reader = await bus.replies()
    try:
        await bus.publish(tasks_for(rid, [first_model], plan, text=text))
        got = await responses_of(reader, rid)
        await asyncio.sleep(0.5)
        got += await responses_of(reader, rid, timeout=0.5)
    finally:
        await reader.stop()
    assert len(got) == 1, f"expected exactly one response, got {len(got)}"
    return got[0]


async def test_cascade_escalates_when_the_cheap_answer_fails_its_check(bus):
    bus.behave("cs-small", reply="I am not sure")
    bus.behave("cs-large", reply="42")
    plan = ExecutionPlan(mode="cascade", cascade=[
        CascadeTier(target=_t("cs-small"), check=CheckSpec(kind="regex", pattern=r"^\d+$")),
        CascadeTier(target=_t("cs-large"))])
    response = await _ask(bus, "cascade", "cs-small", plan)
    assert response.status == "ok" and response.output == "42"
    assert response.path == ["openai/cs-small", "openai/cs-large"]
    assert response.models == ["openai/cs-large"]
    assert [(p.step, p.model, p.status) for p in response.parts] == [
        (0, "cs-small", "ok"), (1, "cs-large", "ok")]


async def test_cascade_stops_at_the_cheap_tier_when_the_judge_passes_it(bus):
    bus.behave("cj-small", reply='{"answer": 42}')
    bus.behave("cj-judge", reply="PASS")
    bus.behave("cj-large", reply="never asked")
    plan = ExecutionPlan(mode="cascade", cascade=[
        CascadeTier(target=_t("cj-small"), check=CheckSpec(kind="judge", judge=_t("cj-judge"))),
        CascadeTier(target=_t("cj-large"))])
    response = await _ask(bus, "cascade-judge", "cj-small", plan)
    assert response.output == '{"answer": 42}' and response.path == ["openai/cj-small"]
    assert [(p.part_id, p.model) for p in response.parts] == [(0, "cj-small"), (1, "cj-judge")]
    assert bus.calls("cj-large") == 0


async def test_cascade_with_a_json_schema_check(bus):
    bus.behave("cx-small", reply="not json at all")
    bus.behave("cx-large", reply='{"n": 1}')
    check = CheckSpec(kind="json_schema", json_schema={"type": "object", "required": ["n"]})
    plan = ExecutionPlan(mode="cascade", cascade=[
        CascadeTier(target=_t("cx-small"), check=check), CascadeTier(target=_t("cx-large"))])
    response = await _ask(bus, "cascade-json", "cx-small", plan)
    assert response.output == '{"n": 1}' and len(response.path) == 2


def _chain() -> ExecutionPlan:
    return ExecutionPlan(mode="chain", chain=[
        ChainStage(name="analyse", target=_t("ch-analyse"), instruction="Analyse."),
        ChainStage(name="generate", target=_t("ch-generate"), instruction="Write.",
                   inputs=["request", "analyse"], transform="merge", token_budget=40),
        ChainStage(name="review", target=_t("ch-review"), inputs=["generate"],
                   transform="compress", token_budget=20),
    ])


async def test_chain_runs_its_stages_in_order_with_transformed_context(bus):
    for stage in ("analyse", "generate", "review"):
        bus.behave(f"ch-{stage}", latency_ms=10)
    response = await _ask(bus, "chain", "ch-analyse", _chain(), text="Explain Kafka partitions")
    assert response.status == "ok"
    assert response.path == ["analyse", "generate", "review"]
    assert response.models == ["openai/ch-analyse", "openai/ch-generate", "openai/ch-review"]
    # the simulator echoes the first words of its input: review saw generate's output,
    # generate saw the merged "## request" section
    assert response.output.startswith("[ch-review] [ch-generate] ## request Explain Kafka")
    assert [p.step for p in response.parts] == [0, 1, 2]


async def test_a_failed_chain_stage_resumes_from_its_checkpoint(bus):
    bus.behave("ch-analyse", latency_ms=10)
    bus.behave("ch-generate", fail_first=1, failure={"kind": "status", "status": 400})
    bus.behave("ch-review", latency_ms=10)
    before = bus.calls("ch-analyse")
    response = await _ask(bus, "chain-retry", "ch-analyse", _chain(), text="Explain logs")
    assert response.status == "ok" and response.path == ["analyse", "generate", "review"]
    assert bus.calls("ch-analyse") == before + 1, "the analyse stage was not re-run"
    assert bus.calls("ch-generate") >= 2
