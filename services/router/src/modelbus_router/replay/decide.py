"""One request routed under a policy without side effects: what the router *would* decide.

The same code as the live engine, not a second implementation: :func:`engine.prepare`
(route, RBAC, input guardrails) then :func:`planner.build` (constraints, strategy, plan,
governance check of everything the plan reaches), then the approval gate's reasons. What
the live router keeps in Redis is neither read nor written: no idempotency claim, quota,
budget reservation, cache lookup, sticky assignment or approval parking. Strategies that
read live state (``latency`` statistics, a session's sticky target, open circuits) are
decided with none, which is what a router with an empty Redis would do.

Used by offline replay (:mod:`modelbus_router.replay.run`) and live shadow routing
(:mod:`modelbus_router.shadow`), so a shadow decision and a replayed one agree by
construction for the same request and policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import ErrorCode, RequestEvent, RoutingDecision, TaskEvent

from modelbus_router.engine import prepare
from modelbus_router.errors import RoutingError
from modelbus_router.guardrails import approval_reasons, with_output_checks
from modelbus_router.planner import NO_INPUTS, build
from modelbus_router.policy import Policy
from modelbus_router.reachable import plan_reach

SERVED, REFUSED, PARKED = "served", "refused", "parked"


@dataclass(frozen=True)
class DryDecision:
    """What the router would do with one request under one policy."""

    outcome: str  # served | refused | parked (held for approval)
    policy_version: str
    decision: RoutingDecision | None = None
    error_code: ErrorCode | None = None
    error: str | None = None
    estimated_cost_usd: float = 0.0
    reach: tuple[str, ...] = ()  # provider/model of every model the request would reach
    parts: tuple[str, ...] = ()  # provider/model of the tasks dispatched first
    #: the tasks the router would publish first (output checks included, no budget hold):
    #: what counterfactual execution sends (:mod:`modelbus_router.replay.counterfactual`)
    tasks: tuple[TaskEvent, ...] = ()

    @property
    def selected(self) -> list[str]:
        if self.decision is None:
            return []
        return [f"{m.provider}/{m.model}" for m in self.decision.selected]


def decide(policy: Policy, request: RequestEvent) -> DryDecision:
    try:
        ready = prepare(policy, request)
        routed = build(policy, ready.resolved, ready.request, NO_INPUTS)
    except RoutingError as exc:
        return DryDecision(REFUSED, policy.version, error_code=exc.code, error=str(exc))
    reasons = approval_reasons(ready.guards.approval, ready.request, routed.estimated_cost_usd)
    reach = tuple(dict.fromkeys(r.ref for r in plan_reach(routed.tasks)))
    parts = tuple(f"{t.provider}/{t.model}" for t in routed.tasks)
    tasks = tuple(with_output_checks(routed, ready.guards.output).tasks)
    return DryDecision(PARKED if reasons else SERVED, policy.version, routed.decision,
                       estimated_cost_usd=routed.estimated_cost_usd, reach=reach, parts=parts,
                       tasks=tasks)
