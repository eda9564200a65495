"""One test per strategy: the plan fields the workers and the aggregator act on. No broker."""

from __future__ import annotations

from collections import Counter

import pytest
from modelbus_router.planner import plan
from modelbus_router.policy import parse_policy
from modelbus_router.strategies import StrategyInputs
from modelbus_runtime.model_stats import Stats
from modelbus_schemas import RequestEvent, TaskEvent
from modelbus_schemas.identity import scoped_id

CATALOG = """
catalog:
  cheap: {provider: openai, model: cheap, input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.4}
  mid: {provider: gemini, model: mid, input_usd_per_mtok: 0.3, output_usd_per_mtok: 2.5}
  strong: {provider: anthropic, model: strong, input_usd_per_mtok: 3, output_usd_per_mtok: 15}
  local: {provider: selfhosted, model: local}
"""


def _policy(routes: str):
    return parse_policy(CATALOG + "routes:\n" + routes)


def _request(rid: str = "r-1", **kw) -> RequestEvent:
    return RequestEvent(request_id=rid, task="t",
                        messages=[{"role": "user", "content": "hello there"}], **kw)


def _refs(tasks: list[TaskEvent]) -> list[str]:
    return [f"{t.provider}/{t.model}" for t in tasks]


def test_single_takes_the_first_eligible_target_and_records_the_others():
    routed = plan(_request(), _policy("  t: {targets: [{model: cheap}, {model: mid}]}"))
    [task] = routed.tasks
    assert _refs([task]) == ["openai/cheap"] and task.plan.mode == "single"
    assert task.fallbacks == []
    assert task.event_id == TaskEvent.make_id(scoped_id("default", "r-1"), 0)
    assert [(r.model, r.reason) for r in routed.decision.rejected] == [
        ("mid", "single: not selected")]


def test_fallback_carries_retry_fallbacks_and_statuses_and_excludes_non_fallbacks():
    policy = _policy("""
  t:
    strategy: fallback
    fallback_on: [429, 503]
    targets:
      - {model: cheap, retry: {max_attempts: 4, base_delay_ms: 50}}
      - {model: strong, as_fallback: false}
      - {model: mid, retry: {max_attempts: 2}}
""")
    routed = plan(_request(), policy)
    [task] = routed.tasks
    assert task.plan.mode == "fallback" and (task.provider, task.model) == ("openai", "cheap")
    assert task.retry.max_attempts == 4 and task.retry.base_delay_ms == 50
    assert [f.ref() for f in task.fallbacks] == ["gemini/mid"]
    assert task.fallbacks[0].retry.max_attempts == 2
    assert task.fallback_on == [429, 503]
    assert {r.model: r.reason for r in routed.decision.rejected} == {
        "strong": "fallback: may not serve as a fallback"}
    assert [str(s) for s in routed.decision.selected] == ["openai/cheap", "gemini/mid"]


def test_weighted_follows_the_weights_is_stable_per_request_and_honours_sticky():
    policy = _policy("""
  t: {strategy: weighted, targets: [{model: cheap, weight: 3}, {model: mid, weight: 1}]}
""")
    picks = Counter(plan(_request(f"req-{i}"), policy).tasks[0].model for i in range(2000))
    assert 0.70 < picks["cheap"] / 2000 < 0.80
    assert len({plan(_request("same"), policy).tasks[0].model for _ in range(5)}) == 1
    for i in range(20):
        routed = plan(_request(f"req-{i}"), policy, StrategyInputs(sticky="mid"))
        assert routed.tasks[0].model == "mid" and routed.chosen == "mid"


def _stats(**ms: float) -> dict:
    ref = {"cheap": ("openai", "cheap"), "mid": ("gemini", "mid")}
    return {ref[k]: Stats(latency_ms=v, ms_per_output_token=v / 10, samples=10)
            for k, v in ms.items()}


LATENCY = "  t: {strategy: latency, targets: [{model: cheap}, {model: mid}]}"


def test_latency_picks_the_faster_model_and_explores_models_without_samples():
    policy = _policy(LATENCY)
    assert plan(_request(), policy, StrategyInputs(stats=_stats(cheap=300, mid=100))) \
        .tasks[0].model == "mid"
    explored = plan(_request(), policy, StrategyInputs(stats=_stats(mid=100)))
    assert explored.tasks[0].model == "cheap"
    assert "exploring" in explored.decision.rejected[0].reason


@pytest.mark.parametrize(("leader", "cheap", "mid", "expected"), [
    ("cheap", 115, 100, "cheap"),   # within 1.2x: the leader keeps the traffic
    ("cheap", 119, 100, "cheap"),
    ("cheap", 125, 100, "mid"),     # beyond 1.2x: switch
    ("mid", 100, 115, "mid"),
    (None, 115, 100, "mid"),        # no leader: the fastest
])
def test_latency_hysteresis(leader, cheap, mid, expected):
    inputs = StrategyInputs(stats=_stats(cheap=cheap, mid=mid), leader=leader)
    assert plan(_request(), _policy(LATENCY), inputs).tasks[0].model == expected


def test_latency_can_rank_by_time_per_output_token():
    policy = _policy("  t: {strategy: latency, latency_metric: ms_per_output_token,"
                     " targets: [{model: cheap}, {model: mid}]}")
    stats = {("openai", "cheap"): Stats(500, 2.0, 10), ("gemini", "mid"): Stats(100, 5.0, 10)}
    assert plan(_request(), policy, StrategyInputs(stats=stats)).tasks[0].model == "cheap"


def test_cost_picks_the_cheapest_eligible_model_for_this_request():
    policy = _policy("  t: {strategy: cost, targets: [{model: strong}, {model: mid},"
                     " {model: cheap}]}")
    routed = plan(_request(params={"max_tokens": 1000}), policy)
    assert routed.tasks[0].model == "cheap"
    assert routed.estimated_cost_usd == pytest.approx(
        (routed.decision.estimated_input_tokens * 0.1 + 1000 * 0.4) / 1e6)
    restricted = plan(_request(data_class="restricted"), _policy(
        "  t: {strategy: cost, targets: [{model: cheap}, {model: local}]}"))
    assert restricted.tasks[0].model == "local"


def test_ensemble_fans_out_n_parts_with_the_aggregation_spec():
    policy = _policy("""
  t:
    strategy: ensemble
    ensemble_size: 2
    ensemble: {strategy: majority, quorum: 2, deadline_ms: 5000}
    targets: [{model: cheap}, {model: mid}, {model: strong}]
""")
    routed = plan(_request(), policy)
    assert _refs(routed.tasks) == ["openai/cheap", "gemini/mid"]
    assert [t.part_id for t in routed.tasks] == [0, 1]
    assert all(t.parts_total == 2 and t.plan.mode == "ensemble" for t in routed.tasks)
    assert [t.event_id for t in routed.tasks] == [
        TaskEvent.make_id(scoped_id("default", "r-1"), 0),
        TaskEvent.make_id(scoped_id("default", "r-1"), 1)]
    assert routed.tasks[0].plan.ensemble.strategy == "majority"
    assert routed.tasks[0].plan.ensemble.quorum == 2
    assert [r.model for r in routed.decision.rejected] == ["strong"]


def test_cascade_dispatches_tier_zero_with_every_tier_and_check_in_the_plan():
    policy = _policy("""
  t:
    strategy: cascade
    targets:
      - {model: cheap, check: {kind: min_length, min_chars: 20}}
      - {model: mid, check: {kind: regex, pattern: "^OK"}}
      - {model: strong, check: {kind: min_length, min_chars: 1}}
""")
    [task] = plan(_request(), policy).tasks
    tiers = task.plan.cascade
    assert task.plan.mode == "cascade" and task.plan.step == 0 and task.model == "cheap"
    assert [t.target.ref() for t in tiers] == ["openai/cheap", "gemini/mid", "anthropic/strong"]
    assert tiers[0].check.min_chars == 20 and tiers[1].check.pattern == "^OK"
    assert tiers[-1].check is None, "the last tier has nothing to escalate to"
    assert task.parts_total == 1
    assert task.event_id == TaskEvent.make_id(scoped_id("default", "r-1"), 0, step=0)


def test_chain_dispatches_stage_zero_with_every_stage_in_the_plan():
    policy = _policy("""
  t:
    strategy: chain
    stages:
      - {name: outline, model: cheap, instruction: Outline it., transform: compress}
      - {name: write, model: strong, inputs: [request, outline], token_budget: 800}
""")
    [task] = plan(_request(), policy).tasks
    stages = task.plan.chain
    assert task.plan.mode == "chain" and task.plan.step == 0 and task.model == "cheap"
    assert [s.name for s in stages] == ["outline", "write"]
    assert stages[0].instruction == "Outline it." and stages[0].transform == "compress"
    assert stages[1].inputs == ["request", "outline"] and stages[1].token_budget == 800
    assert stages[1].target.ref() == "anthropic/strong"
