"""Ensemble, cascade and chain flows as pure decisions over a request's stored results."""

from __future__ import annotations

from datetime import timedelta

from modelbus_aggregator import cascade, chain, ensemble
from modelbus_aggregator.actions import Dispatch, FlowInput
from modelbus_aggregator.judge import listed_parts, read_choice, read_pass
from modelbus_aggregator.steps import is_judge_verdict
from modelbus_schemas import (
    CascadeTier,
    ChainStage,
    CheckSpec,
    EnsembleSpec,
    ExecutionPlan,
    Target,
    TaskEvent,
)
from modelbus_schemas.identity import scoped_id

from services.aggregator.tests.aggregator_factories import T0, make_result, make_task

NOW = T0 + timedelta(milliseconds=250)
R = scoped_id("default", "r")  # the factories' request, as ids name it


def _flow(*results, final=False, incoming=None, origin=None) -> FlowInput:
    return FlowInput({(r.part_id, r.plan.step): r for r in results}, NOW, final=final,
                     incoming=incoming, origin=origin)


def _ens(strategy: str, **kw) -> ExecutionPlan:
    return ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy=strategy, **kw))


def test_ensemble_waits_then_answers_with_all_parts_summarised():
    plan = _ens("majority")
    a = make_result(part=0, total=3, text="4", plan=plan)
    b = make_result(part=1, total=3, text="5", plan=plan)
    assert ensemble.decide(plan.ensemble, 3, _flow(a, b)) is None
    c = make_result(part=2, total=3, text="5 ", plan=plan)
    action = ensemble.decide(plan.ensemble, 3, _flow(a, b, c))
    response = action.response
    assert response.status == "ok" and response.output == "5"
    assert response.models == ["openai/m1", "openai/m2"]
    assert [p.part_id for p in response.parts] == [0, 1, 2]
    assert response.cost_usd == 0.003 and response.usage.input_tokens == 9
    assert response.latency_ms == 250 and response.policy_version == "v7"
    assert response.missing_parts == []


def test_ensemble_deadline_gives_partial_naming_the_missing_part():
    plan = _ens("all", deadline_ms=1000)
    a = make_result(part=0, total=3, plan=plan)
    c = make_result(part=2, total=3, plan=plan)
    assert ensemble.decide(plan.ensemble, 3, _flow(a, c)) is None
    response = ensemble.decide(plan.ensemble, 3, _flow(a, c, final=True)).response
    assert response.status == "partial" and response.missing_parts == [1]
    missing = [p for p in response.parts if p.status == "missing"]
    assert [(p.part_id, p.model) for p in missing] == [(1, "m1")]
    assert response.output == "[openai/m0]\nanswer 0\n\n[openai/m2]\nanswer 2"


def test_ensemble_quorum_answers_ok_and_names_unwaited_parts():
    plan = _ens("majority", quorum=2)
    a = make_result(part=0, total=3, text="x", plan=plan)
    b = make_result(part=1, total=3, text="x", plan=plan)
    response = ensemble.decide(plan.ensemble, 3, _flow(a, b)).response
    assert response.status == "ok" and response.missing_parts == [2]


def test_ensemble_with_nothing_successful_by_the_deadline_is_an_error():
    plan = _ens("first_success", deadline_ms=100)
    a = make_result(part=0, total=2, status="error", plan=plan)
    response = ensemble.decide(plan.ensemble, 2, _flow(a, final=True)).response
    assert response.status == "error" and response.error.code == "deadline_exceeded"
    assert response.missing_parts == [1]


def test_judge_strategy_dispatches_a_judge_then_follows_its_verdict():
    judge = Target(provider="anthropic", model="judge-1")
    plan = _ens("judge", judge=judge)
    parts = [make_result(part=i, total=3, text=f"cand {i}", plan=plan) for i in range(3)]
    action = ensemble.decide(plan.ensemble, 3, _flow(*parts))
    assert isinstance(action, Dispatch)
    task = action.task
    assert (task.part_id, task.plan.step, task.parts_total) == (3, 0, 3)
    assert task.event_id == TaskEvent.make_id(R, 3, 0) == f"{R}:task:3"
    assert (task.provider, task.model) == ("anthropic", "judge-1")
    assert listed_parts(task.messages) == [0, 1, 2]
    assert "What is Kafka?" in task.messages[-1].content
    verdict = make_result(part=3, total=3, text="Candidate 3 is best", plan=plan, origin=task,
                          model="judge-1")
    assert is_judge_verdict(verdict)
    response = ensemble.decide(plan.ensemble, 3, _flow(*parts, verdict)).response
    assert response.output == "cand 2" and response.models == ["openai/m2"]
    assert any(p.part_id == 3 and p.model == "judge-1" for p in response.parts)


def test_judge_verdicts_are_read_robustly():
    assert read_choice("I pick 2.", 3) == 1 and read_choice("none", 3) is None
    assert read_choice("7 then 1", 3) == 0
    assert read_pass("PASS", None) and not read_pass("fail: wrong year", None)
    assert read_pass("score 8", 0.7) and not read_pass("0.4", 0.5)


def _cascade_plan(check: CheckSpec, step: int = 0) -> ExecutionPlan:
    return ExecutionPlan(mode="cascade", step=step, cascade=[
        CascadeTier(target=Target(provider="openai", model="small"), check=check),
        CascadeTier(target=Target(provider="anthropic", model="big")),
    ])


def test_cascade_escalates_when_the_check_fails_and_records_the_path():
    check = CheckSpec(kind="regex", pattern=r"^\d+$")
    tier0 = make_result(plan=_cascade_plan(check), text="about four", model="small")
    action = cascade.decide(_cascade_plan(check).cascade, _flow(tier0))
    assert isinstance(action, Dispatch)
    assert (action.task.provider, action.task.model, action.task.plan.step) == (
        "anthropic", "big", 1)
    assert action.task.event_id == f"{R}:task:0:1"
    assert action.task.messages == tier0.origin.messages
    tier1 = make_result(plan=_cascade_plan(check, 1), text="4", model="big")
    response = cascade.decide(_cascade_plan(check).cascade, _flow(tier0, tier1)).response
    assert response.output == "4" and response.path == ["openai/small", "anthropic/big"]
    assert [(p.step, p.model) for p in response.parts] == [(0, "small"), (1, "big")]


def test_cascade_accepts_the_cheap_tier_when_it_passes():
    check = CheckSpec(kind="min_length", min_chars=3)
    tier0 = make_result(plan=_cascade_plan(check), text="four", model="small")
    response = cascade.decide(_cascade_plan(check).cascade, _flow(tier0)).response
    assert response.status == "ok" and response.path == ["openai/small"]


def test_cascade_judge_check_asks_a_judge_and_escalates_on_fail():
    check = CheckSpec(kind="judge", judge=Target(provider="openai", model="judge"))
    tiers = _cascade_plan(check).cascade
    tier0 = make_result(plan=_cascade_plan(check), text="maybe", model="small")
    action = cascade.decide(tiers, _flow(tier0))
    assert isinstance(action, Dispatch) and action.task.event_id == f"{R}:task:1"
    assert (action.task.part_id, action.task.plan.step, action.task.model) == (1, 0, "judge")
    verdict = make_result(part=1, plan=_cascade_plan(check), text="FAIL", model="judge",
                          origin=action.task)
    action = cascade.decide(tiers, _flow(tier0, verdict))
    assert isinstance(action, Dispatch) and action.task.model == "big"
    passing = verdict.model_copy(update={"text": "PASS"})
    assert cascade.decide(tiers, _flow(tier0, passing)).response.output == "maybe"


def _chain_plan(step: int = 0) -> ExecutionPlan:
    return ExecutionPlan(mode="chain", step=step, chain=[
        ChainStage(name="analyse", target=Target(provider="openai", model="a"),
                   instruction="Analyse."),
        ChainStage(name="generate", target=Target(provider="openai", model="g"),
                   instruction="Write.", inputs=["request", "analyse"], transform="merge",
                   token_budget=12),
        ChainStage(name="review", target=Target(provider="openai", model="r"),
                   inputs=["generate"], transform="none"),
    ])


def test_chain_builds_the_next_stage_input_within_its_budget():
    origin = make_task(plan=_chain_plan(), text="Explain Kafka partitions")
    s0 = make_result(plan=_chain_plan(), text="partitions order events per key " * 3,
                     origin=origin, model="a")
    action = chain.decide(_chain_plan().chain, _flow(s0, origin=origin))
    task = action.task
    assert (task.model, task.plan.step, task.event_id) == ("g", 1, f"{R}:task:0:1")
    assert task.messages[0].content == "Write."
    body = task.messages[1].content
    assert body.startswith("## request\nExplain Kafka partitions")
    assert len(body.split()) <= 12


def test_chain_retries_a_failed_stage_from_its_checkpoint_then_stops_partial():
    stages = _chain_plan().chain
    s0 = make_result(plan=_chain_plan(), text="analysis", model="a")
    stage1_task = make_task(plan=_chain_plan(1), model="g", text="checkpointed input")
    failed = make_result(plan=_chain_plan(1), status="error", origin=stage1_task, model="g")
    retry = chain.decide(stages, _flow(s0, failed, incoming=failed)).task
    assert retry.event_id == TaskEvent.make_id(R, 0, 1, 1) == f"{R}:task:0:1:1"
    assert retry.messages == stage1_task.messages and retry.model == "g"
    failed_again = make_result(plan=_chain_plan(1), status="error", origin=retry, model="g")
    response = chain.decide(stages, _flow(s0, failed_again, incoming=failed_again)).response
    assert response.status == "partial" and response.output == "analysis"
    assert response.path == ["analyse", "generate"] and response.error.code == "retries_exhausted"


def test_chain_completes_with_every_stage_model():
    stages = _chain_plan().chain
    results = [make_result(plan=_chain_plan(i), text=f"out {i}", model=m)
               for i, m in enumerate("agr")]
    response = chain.decide(stages, _flow(*results)).response
    assert response.status == "ok" and response.output == "out 2"
    assert response.path == ["analyse", "generate", "review"]
    assert response.models == ["openai/a", "openai/g", "openai/r"]


def test_chain_finish_reason_is_the_last_stage_s():
    stages = _chain_plan().chain
    results = [make_result(plan=_chain_plan(i), text=f"out {i}", model=m,
                           finish_reason="stop" if i < 2 else "length")
               for i, m in enumerate("agr")]
    response = chain.decide(stages, _flow(*results)).response
    assert response.output == "out 2" and response.finish_reason == "length"
