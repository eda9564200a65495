"""One test per constraint, plus rules, the classifier hook and templates. No broker."""

from __future__ import annotations

import pytest
from modelbus_router.planner import RoutingError, plan
from modelbus_router.policy import parse_policy
from modelbus_schemas import ErrorCode, RequestEvent

CATALOG = """
catalog:
  hosted: {provider: openai, model: hosted, regions: [us]}
  eu: {provider: anthropic, model: eu, regions: [eu]}
  local: {provider: selfhosted, model: local, context_window: 1000}
  public-only: {provider: gemini, model: public-only, data_classes: [public]}
"""


def _policy(routes: str, extra: str = ""):
    return parse_policy(CATALOG + extra + "routes:\n" + routes)


def _request(text: str = "hello", **kw) -> RequestEvent:
    return RequestEvent(request_id="r-1", task="t",
                        messages=[{"role": "user", "content": text}], **kw)


def _no_eligible(request, policy) -> str:
    with pytest.raises(RoutingError) as exc:
        plan(request, policy)
    assert exc.value.code == ErrorCode.NO_ELIGIBLE_MODEL
    return str(exc.value)


def test_restricted_data_never_reaches_a_hosted_model():
    policy = _policy("  t: {strategy: fallback, targets: [{model: hosted}, {model: local}]}")
    routed = plan(_request(data_class="restricted"), policy)
    assert [str(s) for s in routed.decision.selected] == ["selfhosted/local"]
    assert routed.tasks[0].fallbacks == []
    assert routed.decision.rejected[0].reason.startswith("data_class: restricted")
    message = _no_eligible(_request(data_class="restricted"),
                           _policy("  t: {targets: [{model: hosted}]}"))
    assert "openai/hosted: data_class: restricted data may not reach a hosted model" in message


def test_a_model_allowlist_narrows_data_classes():
    policy = _policy("  t: {targets: [{model: public-only}, {model: local}]}")
    assert plan(_request(data_class="public"), policy).tasks[0].model == "public-only"
    routed = plan(_request(data_class="internal"), policy)
    assert routed.tasks[0].model == "local"
    assert "does not accept internal" in routed.decision.rejected[0].reason


def test_region_must_be_served_and_star_serves_any():
    policy = _policy("  t: {targets: [{model: hosted}, {model: eu}, {model: local}]}")
    assert plan(_request(region="eu"), policy).tasks[0].model == "eu"
    assert plan(_request(region="us"), policy).tasks[0].model == "hosted"
    assert plan(_request(region="ap"), policy).tasks[0].model == "local"
    assert plan(_request(), policy).tasks[0].model == "hosted", "no region: any model"


def test_rbac_allowlists_of_tenants_and_teams():
    policy = _policy("  t: {targets: [{model: hosted}], allow: {tenants: [acme], teams: [ops]}}")
    assert plan(_request(caller={"tenant": "acme", "team": "ops"}), policy).tasks
    for caller in ({"tenant": "globex", "team": "ops"}, {"tenant": "acme", "team": "dev"}):
        with pytest.raises(RoutingError) as exc:
            plan(_request(caller=caller), policy)
        assert exc.value.code == ErrorCode.FORBIDDEN


def test_context_window_pre_check_skips_models_that_are_too_small():
    policy = _policy("  t: {strategy: fallback, targets: [{model: local}, {model: hosted}]}")
    assert plan(_request("short"), policy).tasks[0].model == "local"
    routed = plan(_request("word " * 1000), policy)
    assert routed.tasks[0].model == "hosted"
    assert routed.decision.rejected[0].reason.startswith("context_window: needs ~")
    assert routed.decision.estimated_input_tokens > 1000
    # the requested output counts too
    assert plan(_request("short", params={"max_tokens": 999}), policy).tasks[0].model == "hosted"


def test_models_with_an_open_circuit_are_skipped():
    policy = _policy("  t: {strategy: fallback, targets: [{model: hosted}, {model: local}]}")
    routed = plan(_request(), policy, open_circuits={("openai", "hosted")})
    assert routed.tasks[0].model == "local"
    assert routed.decision.rejected[0].reason == "health: circuit open"
    with pytest.raises(RoutingError, match="openai/hosted: health: circuit open"):
        plan(_request(), _policy("  t: {targets: [{model: hosted}]}"),
             open_circuits={("openai", "hosted")})


def test_rules_match_in_order_with_a_catch_all():
    policy = _policy("""
  t:
    targets: [{model: hosted}]
    rules:
      - {name: eu, when: {region: [eu]}, targets: [{model: eu}]}
      - {name: vip, when: {metadata: {tier: gold}, teams: [sales]}, targets: [{model: local}]}
      - {name: any-region, when: {region: ["*"], min_input_tokens: 500}, targets: [{model: local}]}
""")
    cases = [
        (_request(region="eu"), "rule:eu", "eu"),
        (_request(metadata={"tier": "gold"}, caller={"team": "sales"}), "rule:vip", "local"),
        (_request(metadata={"tier": "gold"}, caller={"team": "ops"}), "default", "hosted"),
        (_request("word " * 600), "rule:any-region", "local"),
        (_request(), "default", "hosted"),
    ]
    for request, label, model in cases:
        routed = plan(request, policy)
        assert (routed.decision.matched_rule, routed.tasks[0].model) == (label, model)


def test_classifier_hook_decides_what_rules_cannot():
    policy = _policy("""
  t:
    targets: [{model: hosted}]
    rules: [{name: restricted, when: {data_class: [restricted]}, targets: [{model: local}]}]
    classifier:
      name: prompt_complexity
      outcomes:
        complex: {targets: [{model: eu}]}
""")
    hard = plan(_request("Prove step by step that the log is ordered"), policy)
    assert hard.decision.matched_rule == "classifier:prompt_complexity=complex"
    assert hard.tasks[0].model == "eu"
    easy = plan(_request("hi"), policy)
    assert (easy.decision.matched_rule, easy.tasks[0].model) == ("default", "hosted")
    ruled = plan(_request("Prove it", data_class="restricted"), policy)
    assert ruled.decision.matched_rule == "rule:restricted", "rules come first"


def test_templates_render_per_provider_and_are_recorded_with_their_version():
    extra = """
templates:
  tpl:
    version: "7"
    system: Be brief.
    examples: [{user: "2+2?", assistant: "4"}]
    variants: {anthropic: {system: "<rules>Be brief.</rules>"}}
"""
    policy = _policy("  t: {strategy: ensemble, targets: [{model: hosted}, {model: eu}],"
                     " template: tpl}", extra)
    routed = plan(_request("question", caller={"tenant": "acme"}), policy)
    openai, anthropic = routed.tasks
    assert [m.content for m in openai.messages] == ["Be brief.", "2+2?", "4", "question"]
    assert anthropic.messages[0].content == "<rules>Be brief.</rules>"
    assert routed.decision.template == "tpl@7"


def test_cache_key_is_set_only_when_the_route_caches_and_differs_per_tenant():
    cached = _policy("  t: {targets: [{model: hosted}], cache: {ttl_s: 120}}")
    assert plan(_request(), _policy("  t: {targets: [{model: hosted}]}")).decision.cache_key \
        is None
    acme = plan(_request(caller={"tenant": "acme"}), cached).decision.cache_key
    globex = plan(_request(caller={"tenant": "globex"}), cached).decision.cache_key
    assert acme.startswith("120:") and acme != globex
    assert plan(_request(caller={"tenant": "acme"}), cached).decision.cache_key == acme
    assert plan(_request("other", caller={"tenant": "acme"}), cached).decision.cache_key != acme
