"""The shadow decision beside the active one, without a broker: both answers, agreement,
the event's scoped id, and no event where the engine decided nothing."""

from __future__ import annotations

from modelbus_router.engine import Outcome, error_response
from modelbus_router.planner import plan
from modelbus_router.policy import parse_policy
from modelbus_router.shadow import ShadowRouter
from modelbus_schemas import ErrorCode, RequestEvent

ACTIVE = """
catalog:
  big: {provider: openai, model: gpt-4o, output_usd_per_mtok: 10.0}
  small: {provider: openai, model: gpt-4o-mini, output_usd_per_mtok: 0.6}
routes:
  summarize: {targets: [{model: big}]}
  chat: {targets: [{model: small}]}
"""
SHADOW = ACTIVE.replace("summarize: {targets: [{model: big}]}",
                        "summarize: {targets: [{model: small}]}")


def request(task: str) -> RequestEvent:
    return RequestEvent(request_id="r:1", task=task, caller={"tenant": "acme", "team": "t"},
                        messages=[{"role": "user", "content": "hello"}])


def served(policy, req) -> Outcome:
    routed = plan(req, policy)
    return Outcome(tasks=routed.tasks, decision=routed)


def test_both_answers_and_whether_they_agree(tmp_path):
    (tmp_path / "shadow.yaml").write_text(SHADOW)
    shadow, active = ShadowRouter(str(tmp_path / "shadow.yaml")), parse_policy(ACTIVE)
    moved = shadow.decide(active, request("summarize"), served(active, request("summarize")))
    assert not moved.agree
    assert moved.active.decision.selected[0].model == "gpt-4o"
    assert moved.shadow.decision.selected[0].model == "gpt-4o-mini"
    assert moved.shadow.reach == ["openai/gpt-4o-mini"] and moved.active.reach == ["openai/gpt-4o"]
    assert moved.shadow.estimated_cost_usd < moved.active.estimated_cost_usd
    assert moved.event_id == "4:acme:r:1:shadow"  # scoped: (tenant, request id)
    same = shadow.decide(active, request("chat"), served(active, request("chat")))
    assert same.agree and same.shadow.policy_version != same.active.policy_version


def test_no_shadow_event_where_the_engine_decided_nothing(tmp_path):
    (tmp_path / "shadow.yaml").write_text(SHADOW)
    shadow, active = ShadowRouter(str(tmp_path / "shadow.yaml")), parse_policy(ACTIVE)
    req = request("summarize")
    assert shadow.decide(active, req, Outcome()) is None
    duplicate = error_response(req, ErrorCode.DUPLICATE_REQUEST, "dup", active.version)
    assert shadow.decide(active, req, Outcome(response=duplicate)) is None
    refused = error_response(req, ErrorCode.BUDGET_EXCEEDED, "over", active.version)
    event = shadow.decide(active, req, Outcome(response=refused))
    assert event.active.outcome == "refused" and event.shadow.outcome == "served"
    assert event.active.error_code is ErrorCode.BUDGET_EXCEEDED and not event.agree
