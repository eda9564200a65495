"""The tasks counterfactual execution sends: the candidate's own, renamed into the run, and
a judge only where the policy lets it see the request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from modelbus_router.policy import parse_policy
from modelbus_router.reachable import Reach
from modelbus_router.replay import Recorded, decide
from modelbus_router.replay.counterfactual import Pick, Run, Sampler, judge_task, tasks_for
from modelbus_schemas import ChatMessage, RequestEvent
from modelbus_schemas.plan import BudgetHold

from tests.upstream import request_json

POLICY = parse_policy("""
catalog:
  local: {provider: selfhosted, model: llama-3.1-8b}
  hosted: {provider: openai, model: gpt-4o}
routes:
  summarize: {targets: [{model: local}]}
""")


def pick(rid: str = "r1", data_class: str = "restricted") -> Pick:
    request = RequestEvent.model_validate(request_json(
        rid, data_class=data_class, caller={"tenant": "acme", "team": "ops", "user": "u"}))
    decision = decide(POLICY, request)
    assert decision.outcome == "served"
    return Pick(0, Recorded(request), decision)


def test_tasks_are_the_candidates_renamed_into_the_run():
    run = Run("r42", 1.0)
    chosen = pick()
    hold = BudgetHold(hold_id="replay:r42:x", scope="replay:r42:month", reserved_usd=0.1)
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    [task] = tasks_for(run, chosen, hold, now)
    [planned] = chosen.decision.tasks
    assert task.request_id == "replay-r42-r1" and task.event_id == "4:acme:replay-r42-r1:task:0"
    assert task.reply_to == "modelbus.responses.replay-r42"
    assert (task.caller.tenant, task.caller.team, task.caller.user) == ("acme", "replay",
                                                                         "replay:r42")
    assert task.budget_hold == hold and task.plan.guard_record is False
    assert task.received_at == now
    assert task.deadline_at - now == planned.deadline_at - planned.received_at
    assert (task.provider, task.model, task.messages) == (planned.provider, planned.model,
                                                          planned.messages)
    long = run.request_id("x" * 128)
    assert len(long) <= 110 and long.startswith("replay-r42-")


def test_a_judge_the_data_class_forbids_is_not_asked():
    run = Run("r42", 1.0)
    messages = [ChatMessage(role="user", content="which is better?")]
    hosted = judge_task(POLICY, run, pick(), Reach("ensemble judge", "openai", "gpt-4o"),
                        messages, None)
    assert hosted == ("openai/gpt-4o: data_class: restricted data may not reach a "
                      "hosted model")
    local = judge_task(POLICY, run, pick(data_class="internal"),
                       Reach("ensemble judge", "openai", "gpt-4o"), messages, None)
    assert local.request_id == "replay-r42-r1:judge" and local.model == "gpt-4o"
    assert local.messages == messages and local.parts_total == 1


def test_the_sample_is_even_repeatable_and_skips_purged_text():
    def sample(seed: str) -> list[str]:
        sampler = Sampler(3, seed)
        for i in range(30):
            chosen = pick(f"r{i}", "internal")
            sampler.offer(Recorded(chosen.recorded.request, purged=i % 10 == 0),
                          chosen.decision)
        assert sampler.purged == 3
        return [p.recorded.request.request_id for p in sampler.sample()]

    assert sample("a") == sample("a") and len(sample("a")) == 3
    assert not {"r0", "r10", "r20"} & set(sample("a"))


async def test_execute_without_a_budget_is_refused_before_anything_runs(tmp_path):
    from modelbus_cli.commands_replay import run_replay

    from tests.replay.test_replay_policy import replay_args

    path = tmp_path / "candidate.yaml"
    path.write_text("routes:\n  summarize: {provider: openai, model: gpt-4o}\n")
    with pytest.raises(SystemExit, match="give the run a budget with --budget-usd"):
        await run_replay(replay_args("--policy", str(path), "--execute", "5",
                                     "--database-url", "sqlite+aiosqlite:///nowhere.db"))
