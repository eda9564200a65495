"""Replay's pieces without a broker: the side-effect-free decision, the outcome recorded
then, a purged request's stand-in, and the cost estimate under candidate prices."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from modelbus_router.planner import resolve
from modelbus_router.policy import parse_policy
from modelbus_router.replay import REFUSED, SERVED, Recorded, Then, decide
from modelbus_router.replay.compare import compare
from modelbus_router.replay.recorded import ResultUsage, request_of, then_of
from modelbus_schemas import RequestEvent

POLICY = parse_policy("""
catalog:
  big: {provider: openai, model: gpt-4o, input_usd_per_mtok: 2.5, output_usd_per_mtok: 10.0}
  small: {provider: openai, model: gpt-4o-mini, input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6}
  claude: {provider: anthropic, model: claude-haiku-4-5, input_usd_per_mtok: 1.0,
           output_usd_per_mtok: 5.0, regions: [us]}
routes:
  summarize: {targets: [{model: small}], expected_output_tokens: 100}
  draft: {targets: [{model: claude}]}
""")
AT = datetime(2026, 12, 1, tzinfo=UTC)


def request(task: str = "summarize", **kw) -> RequestEvent:
    return RequestEvent(request_id="r1", task=task, caller={"tenant": "acme", "team": "t"},
                        messages=[{"role": "user", "content": "one two three"}], **kw)


def row(kind: str, **kw) -> SimpleNamespace:
    base = {name: None for name in (
        "payload", "provider", "model", "input_tokens", "output_tokens", "cost_usd", "status",
        "error_code", "policy_version", "purged_at", "caller_user")}
    base.update(kind=kind, event_time=AT, part_id=0, request_id="r1", tenant="acme", team="t",
                task="summarize", data_class="internal")
    return SimpleNamespace(**{**base, **kw})


def test_decide_serves_or_refuses_as_the_planner_does():
    served = decide(POLICY, request())
    assert served.outcome == SERVED and served.selected == ["openai/gpt-4o-mini"]
    assert served.reach == ("openai/gpt-4o-mini",)
    refused = decide(POLICY, request("draft", region="eu"))
    assert refused.outcome == REFUSED and refused.error_code.value == "no_eligible_model"
    unknown = decide(POLICY, request("nope"))
    assert unknown.outcome == REFUSED and unknown.error_code.value == "unknown_task"


def test_recorded_usage_is_repriced_at_the_candidates_prices():
    then = Then("served", selected=("openai/gpt-4o",),
                usage=(ResultUsage("openai", "gpt-4o", 1000, 200, 0.0045),))
    c = compare(POLICY, Recorded(request(), then), decide(POLICY, request()))
    assert c.model_changed and c.then_cost_usd == 0.0045
    assert c.now_cost_usd == round((1000 * 0.15 + 200 * 0.6) / 1e6, 10)
    assert c.new_reach == ("openai/gpt-4o-mini",) and c.new_surfaces == ()
    refused = compare(POLICY, Recorded(request("draft", region="eu"), then),
                      decide(POLICY, request("draft", region="eu")))
    assert refused.now_cost_usd == 0.0 and refused.class_change == "served->refused"


def test_refused_then_served_now_is_priced_with_the_planners_estimate():
    now = decide(POLICY, request())
    c = compare(POLICY, Recorded(request(), Then("refused", error_code="budget_exceeded")), now)
    assert c.class_change == "refused->served"
    assert c.now_cost_usd == round(now.estimated_cost_usd, 10) > 0


def test_then_is_read_from_task_result_and_response_rows():
    decision = {"policy_version": "v1", "strategy": "single", "estimated_input_tokens": 40,
                "selected": [{"provider": "openai", "model": "gpt-4o"}]}
    then = then_of([row("response", status="ok"),
                    row("result", provider="openai", model="gpt-4o", input_tokens=40,
                        output_tokens=9, cost_usd=0.0002),
                    row("task", payload={"decision": decision})])
    assert then.outcome == "served" and then.selected == ("openai/gpt-4o",)
    assert then.policy_version == "v1" and then.cost_usd == 0.0002
    refused = then_of([row("response", status="error", error_code="forbidden",
                           policy_version="v1")])
    assert refused.outcome == "refused" and refused.error_code == "forbidden"


def test_a_purged_request_stands_in_with_its_metadata_and_recorded_size():
    then = Then("served", estimated_input_tokens=57)
    stand_in, redacted, purged = request_of(row("request", purged_at=AT, team="ops"), then)
    assert purged and not redacted
    assert stand_in.caller.team == "ops" and stand_in.task == "summarize"
    assert resolve(POLICY, stand_in).input_tokens == 57


def test_redacted_text_is_counted():
    payload = request().model_dump(mode="json")
    payload["messages"][0]["content"] = "mail [EMAIL] about it"
    _, redacted, purged = request_of(row("request", payload=payload), Then("served"))
    assert redacted and not purged
