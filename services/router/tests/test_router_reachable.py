"""What a request can reach (:mod:`modelbus_router.reachable`): leaking routes are refused at
load naming the route and the model, the fix a policy author would write loads, and at
routing time a plan whose judge or check may not see the request is refused."""

from __future__ import annotations

from unittest import mock

import pytest
from modelbus_router import reachable
from modelbus_router.classifier import CLASSIFIERS
from modelbus_router.planner import RoutingError, plan
from modelbus_router.policy import PolicyError, parse_policy
from modelbus_router.reachable import Reach, plan_reach, route_reach, spec_reach
from modelbus_schemas import ErrorCode, RequestEvent

CATALOG = """
catalog:
  gpt-4o: {provider: openai, model: gpt-4o}
  claude-sonnet: {provider: anthropic, model: claude-sonnet-4-5, regions: [us, eu]}
  llama: {provider: selfhosted, model: llama-3.1-8b}
  qwen: {provider: selfhosted, model: qwen2.5-32b}
  eu-only: {provider: selfhosted, model: eu-only, regions: [eu]}
  acme-only: {provider: selfhosted, model: acme-tuned, allow: {tenants: [acme]}}
"""
ENSEMBLE_LEAK = CATALOG + """
routes:
  ensemble:
    strategy: ensemble
    ensemble: {strategy: judge, judge: {provider: openai, model: gpt-4o}}
    targets: [{model: llama}, {model: qwen}]
"""
CASCADE_LEAK = CATALOG + """
routes:
  cascade:
    strategy: cascade
    targets:
      - {model: llama, check: {kind: judge, judge: {provider: anthropic,
                                                   model: claude-sonnet-4-5}}}
      - {model: qwen}
"""


def _request(task: str, data_class: str = "restricted", **kw) -> RequestEvent:
    return RequestEvent(request_id="r-1", task=task, data_class=data_class,
                        messages=[{"role": "user", "content": "the secret plan"}], **kw)


@pytest.mark.parametrize(("text", "route", "model"), [
    (ENSEMBLE_LEAK, "routes.ensemble (default)", "ensemble judge openai/gpt-4o"),
    (CASCADE_LEAK, "routes.cascade (default)",
     "check judge of llama anthropic/claude-sonnet-4-5"),
])
def test_a_route_whose_judge_may_not_see_what_its_targets_accept_is_refused(text, route, model):
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "leak.yaml")
    message = str(refused.value)
    assert route in message and model in message, message
    assert "restricted data may not reach a hosted model" in message


def test_restricted_data_kept_off_the_judge_by_a_rule_loads_and_routes_home():
    policy = parse_policy(ENSEMBLE_LEAK + """
    rules:
      - name: restricted-stays-home
        when: {data_class: [restricted]}
        strategy: ensemble
        ensemble: {strategy: majority}
        targets: [{model: llama}, {model: qwen}]
""")
    restricted = plan(_request("ensemble"), policy)
    assert restricted.decision.matched_rule == "rule:restricted-stays-home"
    assert {r.ref for r in plan_reach(restricted.tasks)} == {
        "selfhosted/llama-3.1-8b", "selfhosted/qwen2.5-32b"}
    internal = plan(_request("ensemble", "internal"), policy)
    assert "openai/gpt-4o" in {r.ref for r in plan_reach(internal.tasks)}


def test_a_rule_that_catches_only_some_restricted_requests_does_not_make_the_route_safe():
    with pytest.raises(PolicyError, match="ensemble judge openai/gpt-4o"):
        parse_policy(ENSEMBLE_LEAK + """
    rules:
      - name: tagged-restricted
        when: {data_class: [restricted], metadata: {tier: gold}}
        targets: [{model: llama}]
""")


def test_a_judge_outside_the_region_its_targets_serve_is_refused_and_one_inside_loads():
    text = CATALOG + """
routes:
  eu-judged:
    strategy: ensemble
    ensemble: {strategy: judge, judge: {provider: selfhosted, model: eu-only}}
    targets: [{model: llama}, {model: qwen}]
"""
    with pytest.raises(PolicyError, match=r"eu-judged .*selfhosted/eu-only.*region"):
        parse_policy(text)
    parse_policy(text.replace("targets: [{model: llama}, {model: qwen}]",
                              "targets: [{model: eu-only}, {model: eu-only}]"))


def test_a_tenant_only_judge_is_refused_on_an_open_route_and_loads_on_that_tenants_route():
    text = CATALOG + """
routes:
  tuned:
    strategy: cascade
    targets:
      - {model: llama, check: {kind: judge, judge: {provider: selfhosted,
                                                   model: acme-tuned}}}
      - {model: qwen}
"""
    with pytest.raises(PolicyError, match=r"tuned .*acme-tuned .*tenant: .* may not use"):
        parse_policy(text)
    policy = parse_policy(text + "    allow: {tenants: [acme]}\n")
    assert plan(_request("tuned", caller={"tenant": "acme"}), policy).tasks


def test_a_tenant_only_target_serves_its_tenant_only():
    policy = parse_policy(CATALOG + "routes:\n  t: {targets: [{model: acme-only}]}\n")
    assert plan(_request("t", caller={"tenant": "acme"}), policy).tasks[0].model == "acme-tuned"
    with pytest.raises(RoutingError) as refused:
        plan(_request("t", caller={"tenant": "globex"}), policy)
    assert refused.value.code is ErrorCode.NO_ELIGIBLE_MODEL
    assert "tenant: 'globex' may not use the model" in str(refused.value)


@pytest.mark.parametrize(("text", "task", "where"), [
    (ENSEMBLE_LEAK, "ensemble", "openai/gpt-4o (ensemble judge)"),
    (CASCADE_LEAK, "cascade", "anthropic/claude-sonnet-4-5 (cascade check judge (tier 0))"),
])
def test_at_routing_time_a_plan_whose_judge_may_not_see_the_request_is_refused(text, task, where):
    with mock.patch.object(reachable, "policy_violations", return_value=[]):
        policy = parse_policy(text)  # as if the load check had missed it
    with pytest.raises(RoutingError) as refused:
        plan(_request(task), policy)
    assert refused.value.code is ErrorCode.NO_ELIGIBLE_MODEL
    assert where in str(refused.value) and "restricted data may not reach" in str(refused.value)
    assert plan(_request(task, "internal"), policy).tasks  # the judge may see internal data


def test_plan_reach_lists_every_model_a_plan_can_put_the_request_before():
    with mock.patch.object(reachable, "policy_violations", return_value=[]):
        policy = parse_policy(CATALOG + """
routes:
  fb: {strategy: fallback, targets: [{model: gpt-4o}, {model: claude-sonnet}]}
  ens:
    strategy: ensemble
    ensemble: {strategy: best_score, judge: {provider: openai, model: gpt-4o},
               score: {kind: judge, judge: {provider: selfhosted, model: qwen2.5-32b}}}
    targets: [{model: llama}, {model: gpt-4o}]
  cas:
    strategy: cascade
    targets:
      - {model: llama, check: {kind: judge, judge: {provider: openai, model: gpt-4o}}}
      - {model: claude-sonnet}
  chn:
    strategy: chain
    stages: [{name: outline, model: llama}, {name: write, model: claude-sonnet}]
""")  # judges on hosted models next to self-hosted targets: refused at load, so not checked
    reached = {task: {(r.role, r.ref) for r in plan_reach(plan(_request(task, "public"),
                                                               policy).tasks)}
               for task in ("fb", "ens", "cas", "chn")}
    assert reached["fb"] == {("target", "openai/gpt-4o"), ("fallback", "anthropic/claude-sonnet-4-5")}
    assert reached["ens"] == {("target", "selfhosted/llama-3.1-8b"), ("target", "openai/gpt-4o"),
                              ("ensemble judge", "openai/gpt-4o"),
                              ("ensemble score judge", "selfhosted/qwen2.5-32b")}
    assert reached["cas"] == {("target", "selfhosted/llama-3.1-8b"),
                              ("cascade tier 0", "selfhosted/llama-3.1-8b"),
                              ("cascade tier 1", "anthropic/claude-sonnet-4-5"),
                              ("cascade check judge (tier 0)", "openai/gpt-4o")}
    assert reached["chn"] == {("target", "selfhosted/llama-3.1-8b"),
                              ("chain stage outline", "selfhosted/llama-3.1-8b"),
                              ("chain stage write", "anthropic/claude-sonnet-4-5")}
    cascade = policy.routes["cas"]
    assert Reach("check judge of llama", "openai", "gpt-4o") in spec_reach(policy.catalog, cascade)
    assert Reach("check judge of llama", "openai", "gpt-4o") not in spec_reach(
        policy.catalog, cascade, targets=["claude-sonnet"])


def test_route_reach_lists_each_way_of_serving_with_its_judges():
    with mock.patch.object(reachable, "policy_violations", return_value=[]):
        policy = parse_policy(ENSEMBLE_LEAK + """
    rules:
      - {name: home, when: {data_class: [restricted]}, targets: [{model: llama}]}
""")
    reach = route_reach(policy, policy.routes["ensemble"])
    assert {label: [(r.role, r.ref) for r in found] for label, found in reach.items()} == {
        "rule:home": [("target", "selfhosted/llama-3.1-8b")],
        "default": [("target", "selfhosted/llama-3.1-8b"), ("target", "selfhosted/qwen2.5-32b"),
                    ("ensemble judge", "openai/gpt-4o")]}


def test_a_classifier_that_calls_a_hosted_model_is_refused_on_a_route_taking_restricted_data():
    def hosted_verdict(request, tokens):
        return "default"

    hosted_verdict.reaches = ["gpt-4o"]
    CLASSIFIERS["hosted_verdict"] = hosted_verdict
    try:
        text = CATALOG + """
routes:
  sorted:
    targets: [{model: llama}]
    classifier: {name: hosted_verdict, outcomes: {default: {targets: [{model: qwen}]}}}
"""
        with pytest.raises(PolicyError, match="classifier hosted_verdict openai/gpt-4o"):
            parse_policy(text)
        parse_policy(text.replace("    classifier:", """    rules:
      - {name: home, when: {data_class: [restricted, confidential, internal, public]},
         targets: [{model: llama}]}
    classifier:"""))  # every request is caught by the rule before the classifier runs
    finally:
        del CLASSIFIERS["hosted_verdict"]


def test_the_default_policy_loads():
    from modelbus_router.policy import load_policy

    assert load_policy().routes
