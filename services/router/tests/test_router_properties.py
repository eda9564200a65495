"""Property test over random policies and requests (hypothesis): whatever the policy, the
strategy and the request, restricted data is never routed to a hosted model, and a model
whose context window is too small for the request is never chosen."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelbus_router.catalog import surface_of
from modelbus_router.planner import RoutingError, plan
from modelbus_router.policy import Policy
from modelbus_router.strategies import StrategyInputs
from modelbus_router.tokens import estimate_tokens
from modelbus_runtime.model_stats import Stats
from modelbus_schemas import RequestEvent

PROVIDERS = ["openai", "anthropic", "gemini", "selfhosted"]
STRATEGIES = ["single", "fallback", "weighted", "latency", "cost", "ensemble", "cascade",
              "chain"]

models = st.fixed_dictionaries({
    "provider": st.sampled_from(PROVIDERS),
    "context_window": st.integers(256, 4000),
    "input_usd_per_mtok": st.floats(0, 20),
    "output_usd_per_mtok": st.floats(0, 60),
    "regions": st.sampled_from([["*"], ["eu"], ["us"], ["eu", "us"]]),
})


@st.composite
def policies(draw):
    catalog = {f"m{i}": {**m, "model": f"m{i}"}
               for i, m in enumerate(draw(st.lists(models, min_size=1, max_size=6)))}
    ids = sorted(catalog)
    routes = {}
    for name in ("a", "b"):
        strategy = draw(st.sampled_from(STRATEGIES))
        chosen = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True))
        route = {"strategy": strategy}
        if strategy == "chain":
            route["stages"] = [{"name": f"s{i}", "model": m} for i, m in enumerate(chosen)]
        else:
            route["targets"] = [{"model": m, "weight": draw(st.floats(0.1, 5)),
                                 "as_fallback": draw(st.booleans())} for m in chosen]
        routes[name] = route
    data_classes = {"restricted": ["self_hosted"],
                    "confidential": draw(st.sampled_from([["self_hosted"],
                                                          ["hosted", "self_hosted"]]))}
    return Policy.model_validate({"catalog": catalog, "routes": routes,
                                  "data_classes": data_classes, "version": "prop"})


requests = st.builds(
    lambda task, words, data_class, region, max_tokens, rid: RequestEvent(
        request_id=f"r-{rid}", task=task, data_class=data_class, region=region,
        messages=[{"role": "user", "content": "word " * words}],
        params={"max_tokens": max_tokens} if max_tokens else {},
    ),
    st.sampled_from(["a", "b"]), st.integers(0, 3000),
    st.sampled_from(["public", "internal", "confidential", "restricted"]),
    st.sampled_from([None, "eu", "us"]), st.one_of(st.none(), st.integers(1, 2000)),
    st.integers(0, 10_000),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), request=requests, fast=st.integers(0, 5), leader=st.integers(0, 5))
def test_restricted_never_hosted_and_window_always_fits(policy, request, fast, leader):
    stats = {(m.provider, m.model): Stats(100.0 if i == fast else 300.0, 1.0, 10)
             for i, m in enumerate(policy.catalog.values())}
    inputs = StrategyInputs(stats=stats, leader=f"m{leader}", sticky=f"m{fast}")
    try:
        routed = plan(request, policy, inputs)
    except RoutingError:
        return
    needed = estimate_tokens(request.messages) + (request.params.max_tokens or 0)
    chosen = [t.target for t in routed.tasks[0].plan.cascade or []]
    chosen += [s.target for s in routed.tasks[0].plan.chain or []]
    chosen += [t for task in routed.tasks for t in task.fallbacks]
    chosen += [task for task in routed.tasks]
    assert chosen
    for target in chosen:
        model = policy.catalog[target.model]
        if request.data_class == "restricted":
            assert surface_of(target.provider) == "self_hosted"
        assert model.context_window >= needed
