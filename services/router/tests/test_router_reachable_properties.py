"""Property test over random policies and requests (hypothesis): whatever the strategy — with
ensemble judges and score judges, cascade check judges, chains, fallbacks, data-class rules,
per-model data-class allowlists, regions and tenant/team access lists — a request is never
put before a model its data class, region, tenant or team forbids: no task, fallback, tier,
stage, judge or check call of the plan.

What the plan can reach is read here from the plan itself (independently of
:mod:`modelbus_router.reachable`), the way the worker (fallbacks) and the aggregator (tiers,
stages, judges; repairs go back to the part's own model) use it.

Two layers are tested apart: policies as loaded (the load check refuses leaking routes, and
whatever loads must route safely), and the routing-time check alone, with the load check
switched off (a policy loaded by an older router, a check that misses a shape).
"""

from __future__ import annotations

from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from modelbus_router import reachable
from modelbus_router.catalog import DEFAULT_SURFACES, surface_of
from modelbus_router.planner import RoutingError, plan
from modelbus_router.policy import Policy
from modelbus_router.strategies import StrategyInputs
from modelbus_schemas import DataClass, ErrorCode, RequestEvent
from pydantic import ValidationError

PROVIDERS = ["openai", "anthropic", "gemini", "selfhosted"]
STRATEGIES = ["single", "fallback", "weighted", "latency", "cost", "ensemble", "cascade",
              "chain"]
CLASSES = ["public", "internal", "confidential", "restricted"]
REGIONS = [["*"], ["eu"], ["us"], ["eu", "us"]]

# self-hosted models, world-wide regions and restricted requests are drawn often enough
# that restricted requests find a target and then meet hosted judges
SOME_PROVIDER = st.sampled_from(["selfhosted", "selfhosted", *PROVIDERS])
models = st.fixed_dictionaries({
    "provider": SOME_PROVIDER,
    "regions": st.sampled_from([["*"], ["*"], *REGIONS]),
}, optional={"data_classes": st.lists(st.sampled_from(CLASSES), min_size=2, unique=True),
             "allow": st.sampled_from([{"tenants": ["acme"]}, {"teams": ["blue"]}])})


@st.composite
def judges(draw, ids, catalog):
    """A judge named by provider/model: a catalog model, or one the catalog does not list."""
    if draw(st.booleans()):
        entry = catalog[draw(st.sampled_from(ids))]
        return {"provider": entry["provider"], "model": entry["model"]}
    return {"provider": draw(SOME_PROVIDER), "model": "judge-x"}


@st.composite
def checks(draw, ids, catalog):
    kind = draw(st.sampled_from(["judge", "judge", "min_length", None]))
    if kind is None:
        return None
    if kind == "min_length":
        return {"kind": "min_length", "min_chars": 5}
    return {"kind": "judge", "judge": draw(judges(ids, catalog))}


@st.composite
def bodies(draw, ids, catalog):
    strategy = draw(st.sampled_from(STRATEGIES))
    chosen = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True))
    body: dict = {"strategy": strategy}
    if strategy == "chain":
        body["stages"] = [{"name": f"s{i}", "model": m} for i, m in enumerate(chosen)]
        return body
    body["targets"] = []
    for m in chosen:
        target = {"model": m, "as_fallback": draw(st.booleans())}
        check = draw(checks(ids, catalog)) if strategy == "cascade" else None
        if check is not None:
            target["check"] = check
        body["targets"].append(target)
    if strategy in ("single", "cost", "latency", "weighted"):
        body["with_fallbacks"] = draw(st.booleans())
    if strategy == "ensemble":
        kind = draw(st.sampled_from(["judge", "best_score", "majority"]))
        ensemble: dict = {"strategy": kind}
        if kind == "judge" or draw(st.booleans()):
            ensemble["judge"] = draw(judges(ids, catalog))
        if kind == "best_score" and draw(st.booleans()):
            ensemble["score"] = {"kind": "judge", "judge": draw(judges(ids, catalog))}
        body["ensemble"] = ensemble
        body["ensemble_size"] = draw(st.integers(1, 4))
    return body


@st.composite
def policies(draw):
    catalog = {f"m{i}": {**m, "model": f"m{i}"}
               for i, m in enumerate(draw(st.lists(models, min_size=1, max_size=6)))}
    ids = sorted(catalog)
    routes = {}
    for name in ("a", "b"):
        route = draw(bodies(ids, catalog))
        rules = []
        for i in range(draw(st.integers(0, 2))):
            when = {"data_class": draw(st.lists(st.sampled_from(CLASSES), min_size=1,
                                                unique=True))}
            if draw(st.booleans()):
                when["region"] = draw(st.sampled_from(REGIONS))
            if draw(st.booleans()):
                when["tenants"] = ["acme"]
            rules.append({"name": f"r{i}", "when": when, **draw(bodies(ids, catalog))})
        route["rules"] = rules
        routes[name] = route
    data_classes = {
        "restricted": ["self_hosted"],
        "confidential": draw(st.sampled_from([["self_hosted"], ["hosted", "self_hosted"]])),
        "internal": draw(st.sampled_from([["self_hosted"], ["hosted", "self_hosted"]])),
    }
    return {"catalog": catalog, "routes": routes, "data_classes": data_classes,
            "version": "prop"}


requests = st.builds(
    lambda task, data_class, region, tenant, team, rid: RequestEvent(
        request_id=f"r-{rid}", task=task, data_class=data_class, region=region,
        caller={"tenant": tenant, "team": team},
        messages=[{"role": "user", "content": "word " * 20}]),
    st.sampled_from(["a", "b"]), st.sampled_from([*CLASSES, "restricted", "restricted"]),
    st.sampled_from([None, None, "eu", "us", "ap"]), st.sampled_from(["acme", "globex"]),
    st.sampled_from([None, "blue", "red"]), st.integers(0, 10_000),
)


def _reached(tasks) -> list[tuple[str, str, str]]:
    """(role, provider, model) of every model the plan's tasks can put the request before."""
    out = []
    for task in tasks:
        out.append(("task", task.provider, task.model))
        out += [("fallback", t.provider, t.model) for t in task.fallbacks]
        ensemble = task.plan.ensemble
        if ensemble is not None and ensemble.judge is not None:
            out.append(("ensemble judge", ensemble.judge.provider, ensemble.judge.model))
        if ensemble is not None and ensemble.score is not None and ensemble.score.judge:
            out.append(("score judge", ensemble.score.judge.provider, ensemble.score.judge.model))
        for tier in task.plan.cascade or []:
            out.append(("tier", tier.target.provider, tier.target.model))
            if tier.check is not None and tier.check.judge is not None:
                out.append(("check judge", tier.check.judge.provider, tier.check.judge.model))
        out += [("stage", s.target.provider, s.target.model) for s in task.plan.chain or []]
    return out


def _leaks(policy: Policy, request: RequestEvent, tasks) -> list[str]:
    surfaces = policy.data_classes.get(request.data_class, DEFAULT_SURFACES[request.data_class])
    entries = {(m.provider, m.model): m for m in policy.catalog.values()}
    out = []
    for role, provider, model in _reached(tasks):
        entry = entries.get((provider, model))
        where = f"{role} {provider}/{model}"
        if request.data_class is DataClass.RESTRICTED and surface_of(provider) != "self_hosted":
            out.append(f"{where}: restricted data on a hosted model")
        if surface_of(provider) not in surfaces:
            out.append(f"{where}: {request.data_class.value} data on {surface_of(provider)}")
        if entry is not None and entry.data_classes is not None and \
                request.data_class not in entry.data_classes:
            out.append(f"{where}: not in the model's data-class allowlist")
        if entry is not None and not entry.serves_region(request.region):
            out.append(f"{where}: region {request.region} not served")
        allow = entry.allow if entry is not None else None
        if allow is not None and ((allow.tenants and request.caller.tenant not in allow.tenants)
                                  or (allow.teams and request.caller.team not in allow.teams)):
            out.append(f"{where}: caller {request.caller.tenant}/{request.caller.team} not allowed")
    return out


def _route(policy: Policy, request: RequestEvent) -> list[str]:
    try:
        routed = plan(request, policy, StrategyInputs())
    except RoutingError as exc:
        assert exc.code in (ErrorCode.NO_ELIGIBLE_MODEL, ErrorCode.UNKNOWN_TASK), exc
        event("refused: " + ("a judge or check" if "plan would send" in str(exc) else "no target"))
        return []
    event(f"routed {routed.decision.strategy}, {request.data_class.value}")
    return _leaks(policy, request, routed.tasks)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=policies(), request=requests)
def test_no_request_reaches_a_model_its_data_class_or_region_forbids(data, request):
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        assert "would see requests" in str(exc), exc  # refused for a leak, nothing else
        event("policy refused at load")
        return
    assert _route(policy, request) == []


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=policies(), request=requests)
def test_the_routing_time_check_alone_stops_every_leak(data, request):
    with mock.patch.object(reachable, "policy_violations", return_value=[]):
        policy = Policy.model_validate(data)  # the load check is off: leaking routes load
    assert _route(policy, request) == []
