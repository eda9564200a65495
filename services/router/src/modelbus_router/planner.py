"""Turns a request into a routing plan under the policy. Knows nothing of Kafka or Redis.

Two steps, so the engine can fetch what the chosen way of serving needs (model stats,
circuit state, a session's sticky target) between them:

1. :func:`resolve` — the route (``unknown_task``), RBAC (``forbidden``), the template, the
   input token estimate and the matching rule / classifier outcome;
2. :func:`build` — constraints on every candidate (each rejection recorded with its reason),
   the strategy's order, the :class:`~modelbus_schemas.plan.ExecutionPlan`, the tasks to
   dispatch (step 0 of a cascade or chain; every part of an ensemble), the decision record,
   the cache key and the cost estimate the budget reservation uses; a plan whose judges or
   checks may not see the request is refused (:func:`modelbus_router.reachable.check_plan`).

:func:`plan` runs both with no outside inputs (tests, benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelbus_runtime.response_cache import make_cache_key
from modelbus_schemas import (
    ErrorCode,
    ModelRef,
    RequestEvent,
    RoutingDecision,
    TaskEvent,
)
from modelbus_schemas.events import Rejection
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.plan import CascadeTier, ChainStage, EnsembleSpec, ExecutionPlan, Target

from modelbus_router.capabilities import Needs
from modelbus_router.constraints import check_access, rejection_reason
from modelbus_router.errors import RoutingError
from modelbus_router.policy import Policy
from modelbus_router.reachable import check_plan
from modelbus_router.routes import Route, ServeSpec, TargetSpec
from modelbus_router.rules import select
from modelbus_router.strategies import StrategyInputs, order
from modelbus_router.templates import Template, render
from modelbus_router.tokens import estimate_request, input_tokens_for

NO_INPUTS = StrategyInputs()

__all__ = ["Resolved", "RoutedPlan", "RoutingError", "build", "plan", "resolve"]


@dataclass(frozen=True)
class Resolved:
    route_name: str
    route: Route
    label: str
    spec: ServeSpec
    template: Template | None
    input_tokens: int

    def catalog_ids(self) -> list[str]:
        return self.spec.model_ids()


@dataclass(frozen=True)
class RoutedPlan:
    decision: RoutingDecision
    tasks: list[TaskEvent]
    estimated_cost_usd: float
    chosen: str  # catalog id of the first target (sticky sessions, latency leader)


def resolve(policy: Policy, request: RequestEvent) -> Resolved:
    route = policy.routes.get(request.task)
    if route is None:
        known = ", ".join(sorted(policy.routes))
        raise RoutingError(
            ErrorCode.UNKNOWN_TASK, f"unknown task {request.task!r}; known tasks: {known}"
        )
    check_access(request.task, route.allow, request.caller)
    template = policy.templates.get(route.template) if route.template else None
    tokens = estimate_request(request, render(template, "", request.messages))
    label, spec = select(route, request, tokens)
    return Resolved(request.task, route, label, spec, template, tokens)


def build(
    policy: Policy,
    resolved: Resolved,
    request: RequestEvent,
    inputs: StrategyInputs = NO_INPUTS,
    open_circuits: frozenset[tuple[str, str]] | set = frozenset(),
    now: datetime | None = None,
) -> RoutedPlan:
    now = now or datetime.now(UTC)
    spec, catalog = resolved.spec, policy.catalog
    output_tokens = 0 if request.operation == "embed" else (
        request.params.max_tokens or resolved.route.expected_output_tokens)
    required = resolved.input_tokens + (request.params.max_tokens or 0)
    rejected: list[Rejection] = []
    eligible_ids: set[str] = set()
    needs = Needs.of(request)
    for model_id in spec.model_ids():
        model = catalog[model_id]
        reason = rejection_reason(policy, model, request, required, open_circuits, needs)
        if reason is None:
            eligible_ids.add(model_id)
        else:
            rejected.append(Rejection(provider=model.provider, model=model.model, reason=reason))

    if spec.strategy == "chain":
        missing = [s.model for s in spec.stages if s.model not in eligible_ids]
        if missing:
            raise _no_eligible(request, rejected, f"chain stages need {missing}")
        ordered: list[TargetSpec] = []
        passed_over: dict[str, str] = {}
    else:
        eligible = [t for t in spec.targets if t.model in eligible_ids]
        if not eligible:
            raise _no_eligible(request, rejected)
        inputs = StrategyInputs(inputs.stats, inputs.sticky, inputs.leader,
                                resolved.input_tokens, output_tokens)
        ordered, passed_over = order(spec, eligible, catalog, inputs, request.request_id)
    routed = _assemble(policy, resolved, request, ordered, rejected, output_tokens, now,
                       lambda used: _unused(catalog, spec, eligible_ids, passed_over, used))
    check_plan(policy, request, routed.tasks)  # judges and checks see the request too
    return routed


def _unused(catalog, spec, eligible_ids, passed_over, used) -> list[Rejection]:
    """Eligible candidates the plan does not use are rejected too, with the strategy's why."""
    no_fallback = {t.model for t in spec.targets if not t.as_fallback}
    out = []
    for model_id in spec.model_ids():
        model = catalog[model_id]
        if model_id in eligible_ids and (model.provider, model.model) not in used:
            if spec.fallbacks_enabled and model_id in no_fallback:
                reason = "fallback: may not serve as a fallback"
            else:
                reason = passed_over.get(model_id) or f"{spec.strategy}: not selected"
            out.append(Rejection(provider=model.provider, model=model.model, reason=reason))
    return out


def _no_eligible(request: RequestEvent, rejected: list[Rejection], extra: str = "") -> RoutingError:
    reasons = "; ".join(f"{r.provider}/{r.model}: {r.reason}" for r in rejected)
    head = f"no eligible model for task {request.task!r}"
    return RoutingError(ErrorCode.NO_ELIGIBLE_MODEL, f"{head}: {extra + '; ' if extra else ''}"
                                                     f"{reasons or 'no candidates'}")


def _target(catalog, spec: TargetSpec | None, model_id: str) -> Target:
    model = catalog[model_id]
    return Target(provider=model.provider, model=model.model, retry=spec.retry if spec else None)


def _assemble(policy, resolved, request, ordered, rejected, output_tokens, now,
              unused) -> RoutedPlan:
    spec, catalog = resolved.spec, policy.catalog
    strategy = spec.strategy

    def cost(model_id: str) -> float:
        model = catalog[model_id]
        return model.cost_usd(input_tokens_for(model.provider, resolved.input_tokens),
                              output_tokens)

    fallbacks: list[Target] = []
    if strategy == "chain":
        stages = [ChainStage(name=s.name, target=_target(catalog, None, s.model),
                             instruction=s.instruction, inputs=s.inputs, transform=s.transform,
                             token_budget=s.token_budget) for s in spec.stages]
        execution = ExecutionPlan(mode="chain", chain=stages)
        parts = [stages[0].target]
        plan_targets = [s.target for s in stages]
        estimate = sum(cost(s.model) for s in spec.stages)
        chosen = spec.stages[0].model
    elif strategy == "cascade":
        tiers = [CascadeTier(target=_target(catalog, t, t.model),
                             check=t.check if i < len(ordered) - 1 else None)
                 for i, t in enumerate(ordered)]
        execution = ExecutionPlan(mode="cascade", cascade=tiers)
        parts = [tiers[0].target]
        plan_targets = [t.target for t in tiers]
        estimate = sum(cost(t.model) for t in ordered)
        chosen = ordered[0].model
    elif strategy == "ensemble":
        chosen_specs = ordered[: spec.ensemble_size or len(ordered)]
        execution = ExecutionPlan(mode="ensemble", ensemble=spec.ensemble or EnsembleSpec())
        parts = [_target(catalog, t, t.model) for t in chosen_specs]
        plan_targets = list(parts)
        estimate = sum(cost(t.model) for t in chosen_specs)
        chosen = chosen_specs[0].model
    else:
        primary = ordered[0]
        if spec.fallbacks_enabled:
            fallbacks = [_target(catalog, t, t.model) for t in ordered[1:] if t.as_fallback]
        execution = ExecutionPlan(mode="fallback" if fallbacks else "single")
        parts = [_target(catalog, primary, primary.model)]
        plan_targets = parts + fallbacks
        serving = [primary, *(t for t in ordered[1:] if t.as_fallback and fallbacks)]
        estimate = max(cost(t.model) for t in serving)
        chosen = primary.model

    template_id = resolved.template.ident(resolved.route.template) if resolved.template else None
    cache_key = None
    if resolved.route.cache is not None:
        cache_key = make_cache_key(
            request.caller.tenant,
            [f"{strategy}"] + [t.ref() for t in plan_targets],
            [m.model_dump() for m in _messages(resolved, request, parts[0].provider)]
            + [c.model_dump() for c in request.context]
            + ([{"operation": "embed", "input": request.input}] if request.input else []),
            request.params.model_dump(exclude_none=True),
            resolved.route.cache.ttl_s,
        )
    decision = RoutingDecision(
        policy_version=policy.version,
        route=resolved.route_name,
        strategy=strategy,
        selected=[ModelRef(provider=t.provider, model=t.model) for t in plan_targets],
        rejected=rejected + unused({(t.provider, t.model) for t in plan_targets}),
        matched_rule=resolved.label,
        template=template_id,
        estimated_input_tokens=resolved.input_tokens,
        cache_key=cache_key,
        decided_at=now,
    )
    tasks = _tasks(request, resolved, decision, execution, parts, fallbacks, spec, now)
    return RoutedPlan(decision, tasks, estimate, chosen)


def _messages(resolved: Resolved, request: RequestEvent, provider: str):
    """What the provider is sent: the template around the messages (an embed request has
    none, and no template applies to it)."""
    if request.operation == "embed":
        return []
    return render(resolved.template, provider, request.messages)


def _tasks(request, resolved, decision, execution, parts, fallbacks, spec, now) -> list[TaskEvent]:
    deadline = now + timedelta(
        milliseconds=resolved.route.deadline_for(request.latency_budget_ms))
    return [
        TaskEvent(
            event_id=TaskEvent.make_id(scoped_id(request.caller.tenant, request.request_id),
                                      part_id),
            request_id=request.request_id,
            task=request.task,
            part_id=part_id,
            parts_total=len(parts),
            provider=target.provider,
            model=target.model,
            operation=request.operation,
            messages=_messages(resolved, request, target.provider),
            input=request.input,
            context=request.context,
            params=request.params,
            caller=request.caller,
            data_class=request.data_class,
            reply_to=request.reply_to,
            received_at=now,
            deadline_at=deadline,
            decision=decision,
            plan=execution,
            retry=target.retry,
            fallbacks=fallbacks if part_id == 0 else [],
            fallback_on=spec.fallback_on if fallbacks else None,
        )
        for part_id, target in enumerate(parts)
    ]


def plan(
    request: RequestEvent,
    policy: Policy,
    inputs: StrategyInputs = NO_INPUTS,
    open_circuits: frozenset[tuple[str, str]] | set = frozenset(),
    now: datetime | None = None,
) -> RoutedPlan:
    """Resolve and build in one call, without outside state."""
    return build(policy, resolve(policy, request), request, inputs, open_circuits, now)
