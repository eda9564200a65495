"""Live shadow routing: every request decided under a second (candidate) policy as well.

Only the active decision is ever acted on. The shadow decision is made with
:func:`modelbus_router.replay.decide.decide` — the same side-effect-free path offline replay
uses, so a shadow decision equals the replay of the same request under the same policy —
and comes out as a :class:`~modelbus_schemas.shadow.ShadowDecisionEvent` carrying both
answers. The shadow policy file (``MODELBUS_SHADOW_POLICY_PATH``) is watched and reloaded
like the active one; a bad shadow policy refuses to start, a bad reload keeps the last good
one. Knows nothing of Kafka: ``app.py`` publishes the event.
"""

from __future__ import annotations

from datetime import UTC, datetime

from modelbus_schemas import ErrorCode, RequestEvent
from modelbus_schemas.shadow import PolicyAnswer, ShadowDecisionEvent
from prometheus_client import Counter

from modelbus_router.engine import Outcome, route_label, scope_of
from modelbus_router.policy import Policy
from modelbus_router.reachable import plan_reach
from modelbus_router.reload import PolicySource
from modelbus_router.replay.decide import DryDecision, decide

SHADOW = Counter("modelbus_router_shadow_decisions_total",
                 "Shadow decisions by route and whether they agree with the active one",
                 ["route", "agree"])


def _answer(decision: DryDecision) -> PolicyAnswer:
    return PolicyAnswer(
        policy_version=decision.policy_version, outcome=decision.outcome,
        decision=decision.decision, error_code=decision.error_code,
        estimated_cost_usd=decision.estimated_cost_usd, reach=list(decision.reach))


def active_answer(policy: Policy, outcome: Outcome) -> PolicyAnswer | None:
    """What the live engine did, in the shadow event's terms; ``None`` when it decided
    nothing (a redelivery of a request already answered, a reused request id)."""
    routed = outcome.decision
    if outcome.approval is not None and routed is not None:
        return PolicyAnswer(policy_version=policy.version, outcome="parked",
                            decision=routed.decision,
                            estimated_cost_usd=routed.estimated_cost_usd)
    if routed is not None:
        return PolicyAnswer(
            policy_version=policy.version, outcome="served", decision=routed.decision,
            estimated_cost_usd=routed.estimated_cost_usd,
            reach=list(dict.fromkeys(r.ref for r in plan_reach(routed.tasks))))
    response = outcome.response
    if response is not None and response.error is not None:
        if response.error.code is ErrorCode.DUPLICATE_REQUEST:
            return None  # not a decision: the request was decided when it first came

        return PolicyAnswer(policy_version=response.policy_version or policy.version,
                            outcome="refused", error_code=response.error.code)
    return None


class ShadowRouter:
    def __init__(self, path: str) -> None:
        self.policies = PolicySource(path)

    def decide(self, active_policy: Policy, request: RequestEvent,
               outcome: Outcome) -> ShadowDecisionEvent | None:
        active = active_answer(active_policy, outcome)
        if active is None:
            return None
        shadow = _answer(decide(self.policies.current, request))
        selected = [(d.decision.selected if d.decision else []) for d in (active, shadow)]
        agree = active.outcome == shadow.outcome and selected[0] == selected[1]
        SHADOW.labels(route=route_label(active_policy, request.task),
                      agree=str(agree).lower()).inc()
        return ShadowDecisionEvent(
            event_id=ShadowDecisionEvent.make_id(scope_of(request)),
            request_id=request.request_id, tenant=request.caller.tenant,
            team=request.caller.team, task=request.task, data_class=request.data_class,
            active=active, shadow=shadow, agree=agree, created_at=datetime.now(UTC))
