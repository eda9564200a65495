"""Policy loading: validation errors name the field, versions are content hashes, reload."""

from __future__ import annotations

import pytest
import yaml
from modelbus_router.planner import RoutingError, plan
from modelbus_router.policy import PolicyError, load_policy, parse_policy
from modelbus_router.reload import PolicySource
from modelbus_schemas import ErrorCode, RequestEvent


def _request(task: str = "summarize", **kw) -> RequestEvent:
    return RequestEvent(request_id="r-1", task=task,
                        messages=[{"role": "user", "content": "hi"}], **kw)


def test_default_policy_loads_with_a_content_hash_version():
    policy = load_policy()
    assert policy.version.startswith("sha256:")
    assert {"summarize", "chat", "classify"} <= set(policy.routes)
    providers = {m.provider for m in policy.catalog.values()}
    assert providers == {"openai", "anthropic", "gemini", "selfhosted"}
    strategies = {r.strategy for r in policy.routes.values()}
    assert strategies == {"single", "fallback", "weighted", "latency", "cost", "ensemble",
                          "cascade", "chain"}


def test_skeleton_tasks_still_answer_from_gpt_4o_mini():
    policy = load_policy()
    for task in ("summarize", "classify"):
        [task_event] = plan(_request(task), policy).tasks
        assert (task_event.provider, task_event.model) == ("openai", "gpt-4o-mini")


def test_version_changes_with_content():
    a = parse_policy("routes: {t: {provider: openai, model: m1}}")
    b = parse_policy("routes: {t: {provider: openai, model: m2}}")
    assert a.version != b.version


CATALOG = "catalog: {m: {provider: openai, model: m}, s: {provider: selfhosted, model: s}}\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("routes: {t: {provider: nowhere, model: m}}", "unknown provider 'nowhere'"),
        ("routes: {t: {provider: openai}}", "routes.t.model"),
        ("routes: {}", "routes"),
        ("routes: [", "not valid YAML"),
        ("- just a list", "mapping"),
        ("routes: {t: {provider: openai, model: m, colour: red}}", "routes.t.colour"),
        (CATALOG + "routes: {t: {targets: [{model: nope}]}}",
         "routes.t (default): unknown catalog model 'nope'"),
        (CATALOG + "routes: {t: {strategy: weighted}}", "targets"),
        (CATALOG + "routes: {t: {strategy: chain, targets: [{model: m}]}}", "stages"),
        (CATALOG + "routes: {t: {strategy: telepathy, targets: [{model: m}]}}",
         "routes.t.strategy"),
        (CATALOG + "routes: {t: {targets: [{model: m, weight: -1}]}}", "routes.t.targets.0.weight"),
        (CATALOG + "data_classes: {restricted: [hosted]}\nroutes: {t: {targets: [{model: s}]}}",
         "data_classes.restricted"),
        (CATALOG + "routes: {t: {targets: [{model: m}], template: ghost}}",
         "routes.t.template: unknown template 'ghost'"),
        (CATALOG + ("routes: {t: {targets: [{model: m}], classifier: {name: ouija, outcomes: "
                    "{a: {targets: [{model: m}]}}}}}"), "routes.t.classifier.name"),
        (("catalog: {m: {provider: openai, model: m, context_window: 10}}\n"
          "routes: {t: {targets: [{model: m}]}}"), "catalog.m.context_window"),
        (CATALOG + "routes: {t: {targets: [{model: m}], rules: [{name: r, when: {region: [eu]},"
                   " targets: [{model: x}]}]}}", "routes.t (rule:r): unknown catalog model 'x'"),
        (CATALOG + "budgets: [{scope: planet, limit_usd: 1}]\nroutes: {t: {targets: "
                   "[{model: m}]}}", "budgets.0.scope"),
    ],
)
def test_bad_policy_is_refused_naming_the_field(text, needle):
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, "test.yaml")
    assert needle in str(exc.value) and "test.yaml" in str(exc.value)


def test_unknown_task_is_a_routing_error_listing_known_tasks():
    with pytest.raises(RoutingError) as exc:
        plan(_request("nope"), load_policy())
    assert exc.value.code == ErrorCode.UNKNOWN_TASK
    assert "summarize" in str(exc.value)


def test_reload_swaps_in_a_good_version_and_keeps_the_last_good_one(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"routes": {"t": {"provider": "openai", "model": "a"}}}))
    source = PolicySource(path)
    first = source.current
    path.write_text(yaml.safe_dump({"routes": {"t": {"provider": "openai", "model": "b"}}}))
    assert source.refresh() is True
    second = source.current
    assert second.version != first.version and second.catalog["openai/b"].model == "b"

    path.write_text("routes: {t: {provider: nowhere, model: c}}")
    assert source.refresh() is False
    assert source.current is second
    assert "unknown provider 'nowhere'" in source.last_error
    assert source.refresh() is False, "an unchanged bad file is not retried"


def test_a_bad_policy_at_start_refuses_to_load(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("routes: {t: {targets: [{model: ghost}]}}")
    with pytest.raises(PolicyError, match="unknown catalog model 'ghost'"):
        PolicySource(path)
