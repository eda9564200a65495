"""Every task the router emits has a deadline: the caller's ``latency_budget_ms``, else the
route's ``deadline_ms``, else 120 s — so a hanging provider never holds a request longer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from modelbus_router.planner import plan
from modelbus_router.policy import PolicyError, load_policy, parse_policy
from modelbus_router.routes import DEFAULT_DEADLINE_MS
from modelbus_schemas import RequestEvent

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = """
catalog: {a: {provider: openai, model: a}, b: {provider: openai, model: b}}
routes:
  quick: {strategy: single, targets: [{model: a}], deadline_ms: 3000}
  plain: {strategy: single, targets: [{model: a}]}
  vote:
    strategy: ensemble
    ensemble: {strategy: first_success}
    targets: [{model: a}, {model: b}]
    deadline_ms: 5000
"""


def _request(task: str, **kw) -> RequestEvent:
    return RequestEvent(request_id="r-1", task=task,
                        messages=[{"role": "user", "content": "hi"}], **kw)


@pytest.mark.parametrize(("task", "budget_ms", "expected_ms"), [
    ("quick", None, 3000),                  # the route's default
    ("plain", None, DEFAULT_DEADLINE_MS),   # no route default: 120 s
    ("quick", 800, 800),                    # the caller's budget wins
    ("plain", 45_000, 45_000),
    ("vote", None, 5000),                   # every part of an ensemble
])
def test_every_task_has_a_deadline(task, budget_ms, expected_ms):
    routed = plan(_request(task, latency_budget_ms=budget_ms), parse_policy(POLICY), now=NOW)
    assert routed.tasks
    for task_event in routed.tasks:
        assert task_event.deadline_at == NOW + timedelta(milliseconds=expected_ms)
    assert DEFAULT_DEADLINE_MS == 120_000


def test_every_route_of_the_default_policy_sets_deadlines():
    policy = load_policy()
    for name in ("summarize", "classify", "chat"):
        [first, *_] = plan(_request(name), policy, now=NOW).tasks
        assert first.deadline_at is not None and first.deadline_at > NOW
    [chat, *_] = plan(_request("chat"), policy, now=NOW).tasks
    assert chat.deadline_at == NOW + timedelta(seconds=60)


def test_a_deadline_outside_the_allowed_range_is_refused_with_the_field_named():
    with pytest.raises(PolicyError, match="deadline_ms"):
        parse_policy(POLICY.replace("deadline_ms: 3000", "deadline_ms: 50"))
