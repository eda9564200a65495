"""Replay simulates the candidate's budgets and quotas over the recorded requests, at their
recorded times, without touching Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelbus_router.policy import parse_policy
from modelbus_router.replay import Recorded, Then, decide, replay
from modelbus_router.replay.recorded import ResultUsage
from modelbus_schemas import RequestEvent

from tests.replay.test_replay_policy import V1
from tests.upstream import request_json

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
USAGE = ResultUsage("openai", "gpt-4o", 1000, 100, 0.0035)  # at gpt-4o prices
COST = 0.0035


def recorded(rid: str, at: datetime, tenant: str = "acme", team: str = "alpha") -> Recorded:
    request = RequestEvent.model_validate(request_json(
        rid, task="summarize", text="the same words every time",
        caller={"tenant": tenant, "team": team, "user": "u"}))
    then = Then("served", selected=("openai/gpt-4o",), usage=(USAGE,))
    return Recorded(request, then, at=at)


async def batches(items):
    yield items


async def test_a_tenant_budget_the_recorded_spend_exceeds_refuses_the_rest(redis_client):
    probe = parse_policy(V1)
    estimate = decide(probe, recorded("x", START).request).estimated_cost_usd
    assert estimate > 0
    # three requests fit (committed before each: 0, 1, 2 costs), the fourth does not
    limit = 2 * COST + estimate
    policy = parse_policy(V1 + f"budgets:\n  - {{scope: tenant, limit_usd: {limit}}}\n")
    before = sorted(await redis_client.keys("modelbus:*"))
    items = [recorded(f"r{i}", START + timedelta(minutes=i)) for i in range(5)]
    items.append(recorded("next-day", START + timedelta(days=1)))  # a new period
    items.append(recorded("other", START + timedelta(minutes=6), tenant="globex"))
    report = (await replay(batches(items), policy)).as_json()
    assert report["outcomes"] == {"served->refused": 2, "served->served": 5}
    assert report["refusals_now"] == {"budget_exceeded": 2}
    assert report["limits_refused"] == {"budget_exceeded": 2, "quota_exceeded": 0}
    refused = {c["request_id"] for c in report["class_changes"]}
    assert refused == {"r3", "r4"}
    assert report["by_tenant"]["acme"]["served_to_refused"] == 2
    assert report["by_tenant"]["globex"]["served_to_refused"] == 0
    assert round(report["by_tenant"]["acme"]["cost_usd"]["now"], 9) == round(4 * COST, 9)
    # without the simulation every request is served
    plain = (await replay(batches(items), policy, limits=False)).as_json()
    assert plain["outcomes"] == {"served->served": 7} and plain["limits_simulated"] is False
    assert sorted(await redis_client.keys("modelbus:*")) == before  # nothing written


async def test_a_team_quota_refuses_past_its_window_and_counts_again_in_the_next():
    policy = parse_policy(V1 + "quotas:\n  - {team: '*', per: minute, max_requests: 2}\n")
    items = [recorded(f"q{i}", START + timedelta(seconds=10 * i)) for i in range(4)]
    items.append(recorded("q-next", START + timedelta(minutes=1, seconds=5)))
    items.append(recorded("q-beta", START + timedelta(seconds=45), team="beta"))
    report = (await replay(batches(items), policy)).as_json()
    assert {c["request_id"] for c in report["class_changes"]} == {"q2", "q3"}
    assert report["refusals_now"] == {"quota_exceeded": 2}
    assert report["outcomes"]["served->served"] == 4
