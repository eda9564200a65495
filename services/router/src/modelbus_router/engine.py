"""The router's use case: one request in, tasks to dispatch or one response out.

Identity is (tenant, request id): every Redis key, hold id and event id naming a request is
built from :func:`scope_of` (:func:`modelbus_schemas.identity.scoped_id`), and every
response carries the tenant. Before :meth:`RouterEngine.route`, ``app.py`` admits the
request (:func:`modelbus_router.identity.admit`: whose it is, where it may be answered) and
answers a refusal with :meth:`RouterEngine.refusal`.

Order of work for a request (each step's side effect is idempotent by its scoped id):

1. claim the request id and idempotency key (``done`` → nothing to do; held by other
   content → ``duplicate_request``, see :mod:`modelbus_router.idempotency`);
2. resolve the route (unknown task, RBAC), screen the input under the route's guardrails
   (size, secrets, prompt injection, personal data: deny, redact or flag; see
   :mod:`modelbus_router.guardrails`) — :func:`prepare`, state-free, which policy replay
   and shadow routing (:mod:`modelbus_router.replay`) share — and admit it under the
   team's quotas;
3. gather what the strategy needs — circuit state, model stats, the sticky target — and
   build the plan (constraints, strategy, decision record);
   a request the route's approval gate holds is parked instead (``Outcome.approval``) and
   routed again by :meth:`RouterEngine.on_approval` when a decision arrives; a request
   that asks to stream gets a streaming plan where its route may stream
   (:mod:`modelbus_router.streaming`);
4. a cache hit is answered here, without dispatch or charge (placeholders restored for
   the caller where the route allows it);
5. reserve the estimated cost on every budget of the tenant and team (atomic; redelivery
   finds the same hold), then hand the tasks, carrying the hold, to the caller to publish;
6. after publishing, the caller calls :meth:`RouterEngine.published`, which completes the
   idempotency claim. Before the tasks are handed over, what the aggregator's output
   guards need (settings, input findings, the placeholder map) is stored under the request.

Knows nothing of Kafka: ``app.py`` publishes what :meth:`RouterEngine.route` returns. The
``route`` label of the decisions metric is bounded by the policy (:func:`route_label`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from modelbus_runtime.budgets import BudgetExceeded, BudgetLimit, Budgets
from modelbus_runtime.model_stats import ModelStats
from modelbus_runtime.response_cache import ResponseCache
from modelbus_schemas import (
    ApprovalDecisionEvent,
    ApprovalRequestEvent,
    ErrorCode,
    ErrorInfo,
    GuardrailFinding,
    RequestEvent,
    ResponseEvent,
    TaskEvent,
)
from modelbus_schemas.identity import scoped_id
from prometheus_client import Counter

from modelbus_router.claims import ClaimCheck
from modelbus_router.errors import RoutingError
from modelbus_router.guardrails import (
    Approvals,
    GuardrailsSpec,
    GuardRecords,
    Screened,
    approval_reasons,
    build_record,
    needs_record,
    restore,
    screen,
    with_output_checks,
)
from modelbus_router.guardrails.surfaces import reaches_hosted
from modelbus_router.idempotency import Idempotency, fingerprint
from modelbus_router.planner import Resolved, RoutedPlan, build, resolve
from modelbus_router.policy import Policy
from modelbus_router.quotas import QuotaExceeded, Quotas
from modelbus_router.reload import PolicySource
from modelbus_router.sticky import StickySessions
from modelbus_router.strategies import StrategyInputs
from modelbus_router.streaming import with_stream

DECISIONS = Counter(
    "modelbus_router_decisions_total", "Routing outcomes by route and outcome",
    ["route", "outcome"],
)
#: The ``route`` label of a task the policy does not name: the caller picks task names, so
#: they never become label values (one series per name sent would grow without bound).
UNKNOWN_ROUTE = "unknown"


def route_label(policy: Policy, task: str) -> str:
    """``task`` when the policy routes it, else :data:`UNKNOWN_ROUTE`: bounded by the policy."""
    return task if task in policy.routes else UNKNOWN_ROUTE


@dataclass(frozen=True)
class Prepared:
    """A request made ready for planning: screened by its route's input guards (possibly
    rewritten: redacted, fenced) and resolved under the policy. No state is read or written
    (:mod:`modelbus_router.replay` plans with it too, without side effects)."""

    request: RequestEvent
    resolved: Resolved
    guards: GuardrailsSpec  # the route's effective guardrails
    screened: Screened


def prepare(policy: Policy, request: RequestEvent) -> Prepared:
    """Resolve the route (``unknown_task``, RBAC) and screen the input (``guardrail_denied``):
    the first, state-free part of routing, shared by the engine and by replay."""
    resolved = resolve(policy, request)
    guards = policy.guardrails_for(resolved.route)
    screened = screen(guards.input, request, task=request.task,
                      hosted=reaches_hosted(policy.catalog, resolved.spec))
    if screened.request is not request:
        request = screened.request
        resolved = resolve(policy, request)  # estimate what will actually be sent
    return Prepared(request, resolved, guards, screened)


class HealthSource(Protocol):
    async def open_targets(self, targets: list[tuple[str, str]]) -> set[tuple[str, str]]: ...


class AllHealthy:
    """Used when no circuit-breaker state is available."""

    async def open_targets(self, targets: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()


@dataclass
class Outcome:
    tasks: list[TaskEvent] = field(default_factory=list)
    response: ResponseEvent | None = None
    decision: RoutedPlan | None = None
    approval: ApprovalRequestEvent | None = None  # parked: announce it, do not complete
    request: RequestEvent | None = None  # set by on_approval: the parked request
    finished: bool = False  # the response is final (cache hit, rejection): complete the claim


def budget_limits(policy: Policy, request: RequestEvent) -> list[BudgetLimit]:
    caller = request.caller
    limits = []
    for spec in policy.budgets:
        if spec.scope == "tenant" and spec.name in ("*", caller.tenant):
            limits.append(BudgetLimit(f"tenant:{caller.tenant}", spec.period, spec.limit_usd))
        elif spec.scope == "team" and caller.team and spec.name in ("*", caller.team):
            limits.append(BudgetLimit(f"team:{scoped_id(caller.tenant, caller.team)}",
                                      spec.period, spec.limit_usd))
    return limits


def _with_findings(routed: RoutedPlan, findings: list[GuardrailFinding]) -> RoutedPlan:
    if not findings:
        return routed
    decision = routed.decision.model_copy(update={"guardrails": findings})
    tasks = [t.model_copy(update={"decision": decision}) for t in routed.tasks]
    return dataclasses.replace(routed, decision=decision, tasks=tasks)


def scope_of(request: RequestEvent) -> str:
    """The request's identity inside modelbus: (tenant, request id), unambiguously."""
    return scoped_id(request.caller.tenant, request.request_id)


def error_response(request: RequestEvent, code: ErrorCode, message: str,
                   policy_version: str | None, *, variant: str | None = None) -> ResponseEvent:
    """``variant`` sets an answer apart from the request's one response (a duplicate, a
    refusal before routing), so that it never shares the event id of the real answer."""
    event_id = ResponseEvent.make_id(scope_of(request))
    return ResponseEvent(
        event_id=f"{event_id}:{variant}" if variant else event_id,
        request_id=request.request_id,
        tenant=request.caller.tenant, task=request.task, status="error",
        error=ErrorInfo(code=code, message=message[:4096]), policy_version=policy_version,
        created_at=datetime.now(UTC),
    )


class RouterEngine:
    def __init__(self, policies: PolicySource, redis, health: HealthSource | None = None,
                 stats: ModelStats | None = None, claims: ClaimCheck | None = None) -> None:
        self.policies = policies
        self.claims = claims  # large content by claim check (None: tasks go as planned)
        self.health = health or AllHealthy()
        self.stats = stats or ModelStats(redis)
        self.budgets = Budgets(redis)
        self.cache = ResponseCache(redis)
        self.quotas = Quotas(redis)
        self.sticky = StickySessions(redis)
        self.idempotency = Idempotency(redis)
        self.approvals = Approvals(redis)
        self.guard_records = GuardRecords(redis)
        self.leaders: dict[tuple[str, str], str] = {}  # (route, rule) → latency leader

    async def route(self, request: RequestEvent) -> Outcome:
        policy = self.policies.current
        claim = await self.idempotency.claim(request)
        if claim.state == "done":
            return Outcome()
        if claim.state == "duplicate":
            DECISIONS.labels(route=route_label(policy, request.task), outcome="duplicate").inc()
            return Outcome(response=error_response(
                request, ErrorCode.DUPLICATE_REQUEST, claim.message(request), policy.version,
                variant=f"duplicate:{fingerprint(request)}"))
        try:
            outcome = await self._route(policy, request)
        except RoutingError as exc:
            rejected = exc.code is ErrorCode.APPROVAL_REJECTED  # final: a retry is no use
            if not rejected:
                await self.idempotency.release(request)
            DECISIONS.labels(route=route_label(policy, request.task), outcome=exc.code.value).inc()
            response = error_response(request, exc.code, str(exc), policy.version)
            findings = getattr(exc, "findings", None)
            if findings:
                response = response.model_copy(update={"guardrails": findings})
            return Outcome(response=response, finished=rejected)
        label = ("parked" if outcome.approval else
                 "cache_hit" if outcome.response else "dispatched")
        DECISIONS.labels(route=route_label(policy, request.task), outcome=label).inc()
        return outcome

    def refusal(self, request: RequestEvent, exc: RoutingError) -> ResponseEvent:
        """The answer to a request refused before routing (identity, reply topic): for the
        default reply topic, with an id of its own (nothing was claimed or reserved)."""
        policy = self.policies.current
        DECISIONS.labels(route=route_label(policy, request.task), outcome=exc.code.value).inc()
        return error_response(request, exc.code, str(exc), policy.version,
                              variant=f"refused:{fingerprint(request)}")

    async def on_approval(self, decision: ApprovalDecisionEvent) -> Outcome:
        """Record an approver's decision (the first one stands) and route the parked request
        again: the gate lets it through, or answers ``approval_rejected``. Nothing parked
        under the id (never gated, or expired): nothing to do."""
        parked = await self.approvals.decide(decision)
        if parked is None:
            return Outcome()
        outcome = await self.route(parked.request)
        outcome.request = parked.request
        return outcome

    async def published(self, request: RequestEvent) -> None:
        await self.idempotency.complete(request)

    async def _route(self, policy: Policy, request: RequestEvent) -> Outcome:
        original = request
        if self.claims is not None:  # screen and plan what the models will read
            request = await self.claims.resolve(request)
        ready = prepare(policy, request)
        request, resolved, guards, screened = (ready.request, ready.resolved, ready.guards,
                                               ready.screened)
        findings = list(screened.findings)
        try:
            await self.quotas.admit(policy.quotas, request)
        except QuotaExceeded as exc:
            raise RoutingError(ErrorCode.QUOTA_EXCEEDED, str(exc)) from None
        routed = await self._build(policy, resolved, request)
        reasons = approval_reasons(guards.approval, request, routed.estimated_cost_usd)
        if reasons:
            parked = await self.approvals.state(scope_of(request))
            if parked is None or parked.state == "pending":
                event = await self.approvals.park(original, guards.approval, reasons,
                                                  routed.estimated_cost_usd, policy.version)
                return Outcome(approval=event, decision=routed)
            if parked.state != "approved":
                raise RoutingError(ErrorCode.APPROVAL_REJECTED, (
                    f"approval rejected by {parked.approver}"
                    + (f": {parked.comment}" if parked.comment else "")))
            findings.append(GuardrailFinding(
                guard="approval", stage="input", mode="validate", action="allowed",
                detail=f"approved by {parked.approver}: {'; '.join(reasons)}"[:512]))
        routed = _with_findings(with_output_checks(routed, guards.output), findings)
        routed = with_stream(routed, request, guards.output, screened.restore_map)
        key = routed.decision.cache_key
        if key is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                response = self._from_cache(hit, request, policy)
                response = response.model_copy(update={
                    "output": restore(response.output, screened.restore_map)
                    if response.output else response.output, "guardrails": findings})
                return Outcome(response=response, decision=routed, finished=True)
        if self.claims is not None:  # payload_too_large before anything is reserved
            routed = dataclasses.replace(routed, tasks=await self.claims.fit(routed.tasks))
        limits = budget_limits(policy, request)
        hold = None
        if limits:
            try:
                hold = await self.budgets.reserve(scope_of(request), limits,
                                                  routed.estimated_cost_usd)
            except BudgetExceeded as exc:
                raise RoutingError(ErrorCode.BUDGET_EXCEEDED, str(exc)) from None
        # the plan tells the aggregator whether to look for a guard record (saves a lookup)
        guarded = needs_record(guards.output, findings, screened.restore_map)
        tasks = [t.model_copy(update={
            "budget_hold": hold or t.budget_hold,
            "plan": t.plan.model_copy(update={"guard_record": guarded})}) for t in routed.tasks]
        await self.guard_records.save(scope_of(request), build_record(
            guards.output, findings, screened.restore_map, tasks[0] if tasks else None))
        await self._remember(resolved, request, routed)
        return Outcome(tasks=tasks, decision=routed)

    async def _build(self, policy: Policy, resolved: Resolved, request: RequestEvent):
        spec = resolved.spec
        refs = [(m.provider, m.model) for m in (policy.catalog[i] for i in spec.model_ids())]
        open_circuits = await self.health.open_targets(refs)
        stats, sticky, leader = {}, None, None
        if spec.strategy == "latency":
            stats = await self.stats.snapshot(refs)
            leader = self.leaders.get((resolved.route_name, resolved.label))
        elif spec.strategy == "weighted" and request.session_id and spec.sticky_ttl_s:
            sticky = await self.sticky.get(request.caller.tenant, resolved.route_name,
                                           request.session_id)
        inputs = StrategyInputs(stats=stats, sticky=sticky, leader=leader)
        routed = build(policy, resolved, request, inputs, open_circuits)
        if spec.strategy == "weighted" and request.session_id and spec.sticky_ttl_s:
            # atomic: the first request of a session to assign wins, the others follow it
            winner = await self.sticky.assign(
                request.caller.tenant, resolved.route_name, request.session_id, routed.chosen,
                spec.sticky_ttl_s, stale=sticky if sticky != routed.chosen else None)
            if winner != routed.chosen:
                inputs = StrategyInputs(stats=stats, sticky=winner, leader=leader)
                routed = build(policy, resolved, request, inputs, open_circuits)
        return routed

    async def _remember(self, resolved: Resolved, request: RequestEvent,
                        routed: RoutedPlan) -> None:
        spec = resolved.spec
        if spec.strategy == "latency":
            self.leaders[(resolved.route_name, resolved.label)] = routed.chosen

    @staticmethod
    def _from_cache(hit: ResponseEvent, request: RequestEvent, policy: Policy) -> ResponseEvent:
        return hit.model_copy(update={
            "event_id": ResponseEvent.make_id(scope_of(request)),
            "request_id": request.request_id, "tenant": request.caller.tenant,
            "task": request.task, "cache_hit": True, "ttft_ms": None, "stream_events": 0,
            "cost_usd": 0.0, "policy_version": policy.version, "created_at": datetime.now(UTC),
        })
