"""The aggregator's core: store each result, run the plan's flow, act on its decision.

Kafka-free: it publishes through an :class:`Outbox` and keeps state in a
:class:`~modelbus_aggregator.state.FanInStore`. One response per request, whatever the
duplicates, redeliveries, restarts and races:

1. every result is recorded idempotently under its (part, step) position;
2. a response is first *claimed*: the chosen response is stored once, atomically, with a
   short publish lease — a concurrent handler (another instance, or this process's deadline
   timer) finds the claim and publishes nothing, or, once the lease lapsed after a crash,
   republishes that same stored response;
3. the claimer writes the request's settled mark (:mod:`modelbus_runtime.settled`: workers
   check it before each provider attempt, so parts still running stop), publishes
   (deterministic event id), settles budget and cache, then marks the request done. A crash before ``done`` leaves the claim for the redelivered result or the
   deadline timer to finish.

Next steps (cascade tiers, chain stages, judges) are published with deterministic ids and
remembered once the broker acknowledged them, so a redelivered result does not repeat them.

A request is (tenant, request id): the store, the deadline index, the claim and the sent
marks are all keyed by its :func:`~modelbus_schemas.identity.scoped_id` (``scope`` below),
taken from the result's ``tenant`` and ``request_id``, so two tenants that picked the same
request id, in flight at once, never share state and each gets its own response.

Output guardrails (:mod:`modelbus_aggregator.output_guards`) review a chosen response before
it is claimed: they may change it (findings, redaction, ``output_invalid``) or send the
output back to the model for repair instead. Placeholders are restored only in the copy
published to the caller; the stored decision and the cache keep the redacted text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.settled import SettledMarks
from modelbus_schemas import EnsembleSpec, ExecutionPlan, ResponseEvent, ResultEvent, TaskEvent
from modelbus_schemas.identity import scoped_id, split_scoped_id

from modelbus_aggregator import cascade, chain, ensemble
from modelbus_aggregator.actions import Action, Dispatch, FlowInput, Respond
from modelbus_aggregator.output_guards import OutputGuardian
from modelbus_aggregator.responses import single_response
from modelbus_aggregator.state import Decision, FanInStore, Snapshot
from modelbus_aggregator.steps import is_judge_verdict

log = logging.getLogger(__name__)


class Outbox(Protocol):
    async def publish_task(self, task: TaskEvent, trace: dict[str, str]) -> None: ...

    async def publish_response(self, topic: str, response: ResponseEvent,
                               trace: dict[str, str]) -> None: ...

    async def was_published(self, topic: str, response: ResponseEvent,
                            since_ms: int | None) -> bool: ...


AfterResponse = Callable[[Decision], Awaitable[None]]


class PublishInProgress(TransientInfraError):
    """Another handler holds the publish lease of this request: retry shortly."""


def scope_of(result: ResultEvent) -> str:
    """The request a result belongs to: (tenant, request id), unambiguously encoded."""
    return scoped_id(result.tenant, result.request_id)


def _named(scope: str) -> dict[str, str]:
    """Log fields naming a request by its scope."""
    try:
        tenant, request_id = split_scoped_id(scope)
    except ValueError:
        return {"request_id": scope}
    return {"tenant": tenant, "request_id": request_id}


def plan_of(result: ResultEvent) -> ExecutionPlan:
    if result.plan.mode == "single" and result.origin is not None:
        return result.origin.plan
    return result.plan


class Aggregator:
    def __init__(
        self,
        store: FanInStore,
        outbox: Outbox,
        *,
        deadline_grace_ms: int = 2_000,
        stage_retries: int = 1,
        after_response: AfterResponse | None = None,
        guards: OutputGuardian | None = None,
        settled: SettledMarks | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.grace = timedelta(milliseconds=deadline_grace_ms)
        self.stage_retries = stage_retries
        self.after_response = after_response
        self.guards = guards
        self.settled = settled
        self.clock = clock

    async def on_result(self, result: ResultEvent, trace: dict[str, str] | None = None) -> None:
        trace = trace or {}
        plan, scope = plan_of(result), scope_of(result)
        if (plan.mode in ("single", "fallback") and result.parts_total == 1
                and not is_judge_verdict(result)):
            response = single_response(result, self.clock())
            await self._respond(scope, _decision(response, [result]), trace)
            return
        snap = await self.store.record(
            result, deadline_ms=self._due_ms(result, plan),
            keep_origin=plan.mode == "chain" and result.plan.step == 0,
            want_origin=plan.mode == "chain",
        )
        if snap.done:
            return
        if snap.decided:
            await self._respond(scope, None, trace)
            return
        flow = FlowInput(snap.results, self.clock(), incoming=result, origin=snap.origin)
        await self._act(scope, self._decide(plan, result.parts_total, flow), snap, trace)

    async def on_deadline(self, scope: str) -> None:
        """The deadline of the request ``scope`` (see :func:`scope_of`) passed: respond with
        what there is (never waits)."""
        snap = await self.store.load(scope)
        if snap.done or (not snap.results and not snap.decided):
            await self.store.forget_deadline(scope)
            return
        if snap.decided:
            await self._respond(scope, None, {}, wait=False)
            return
        first = min(snap.results.values(), key=lambda r: (r.plan.step, r.part_id))
        flow = FlowInput(snap.results, self.clock(), final=True, origin=snap.origin)
        action = self._decide(plan_of(first), first.parts_total, flow)
        if isinstance(action, Respond):
            await self._respond(scope, _decision(action.response, snap.results.values()),
                                {}, wait=False)
        else:  # nothing to answer with yet; never keep a deadline that cannot fire usefully
            log.warning("deadline passed with no decidable state",
                        extra={"fields": _named(scope)})
            await self.store.forget_deadline(scope)

    # -- internals ---------------------------------------------------------------------

    def _decide(self, plan: ExecutionPlan, parts_total: int, flow: FlowInput) -> Action:
        if plan.mode == "cascade" and plan.cascade:
            return cascade.decide(plan.cascade, flow)
        if plan.mode == "chain" and plan.chain:
            return chain.decide(plan.chain, flow, self.stage_retries)
        return ensemble.decide(plan.ensemble or EnsembleSpec(), parts_total, flow)

    def _due_ms(self, result: ResultEvent, plan: ExecutionPlan) -> int | None:
        dues = []
        if plan.mode not in ("cascade", "chain") and plan.ensemble and plan.ensemble.deadline_ms:
            dues.append(result.received_at + timedelta(milliseconds=plan.ensemble.deadline_ms))
        if result.deadline_at is not None:
            dues.append(result.deadline_at + self.grace)
        return int(min(dues).timestamp() * 1000) if dues else None

    async def _act(self, scope: str, action: Action, snap: Snapshot,
                   trace: dict[str, str]) -> None:
        if isinstance(action, Respond):
            decision = _decision(action.response, snap.results.values())
            await self._respond(scope, decision, trace)
        elif isinstance(action, Dispatch):
            await self._dispatch(scope, action.task, trace)

    async def _dispatch(self, scope: str, task: TaskEvent, trace: dict[str, str]) -> None:
        if await self.store.was_sent(scope, task.event_id):
            return
        await self.outbox.publish_task(task, trace)
        await self.store.mark_sent(scope, task.event_id)

    async def _respond(self, scope: str, decision: Decision | None,
                       trace: dict[str, str], wait: bool = True) -> None:
        if decision is not None and self.guards is not None and decision.guard_record is not False:
            reviewed = await self.guards.review(decision.response)
            if isinstance(reviewed, Dispatch):  # the output goes back for repair
                await self._dispatch(scope, reviewed.task, trace)
                return
            decision = decision.model_copy(update={"response": reviewed.response})
        claim = await self.store.claim(scope, decision)
        if claim.state in ("done", "none"):
            return
        if claim.state == "busy":
            if wait:
                raise PublishInProgress(f"response of {scope} is being published")
            return
        if self.settled is not None:  # the answer is fixed: parts still running may stop
            await self.settled.mark(scope)
        stored = claim.decision
        try:
            response = stored.response
            if self.guards is not None:
                response = await self.guards.for_caller(response)
            if claim.state != "takeover" or not await self.outbox.was_published(
                    stored.reply_to, response, stored.decided_at_ms):
                await self.outbox.publish_response(stored.reply_to, response, trace)
            if self.after_response is not None:
                await self.after_response(stored)
        except BaseException:
            try:
                await self.store.release(scope, claim.token)
            except TransientInfraError:
                pass  # the lease expires by itself
            raise
        await self.store.finish(scope)


def _decision(response: ResponseEvent, results) -> Decision:
    results = list(results)
    hold = next((r.budget_hold for r in results if r.budget_hold is not None), None)
    cache_key = next((r.cache_key for r in results if r.cache_key), None)
    flags = {r.plan.guard_record for r in results}
    return Decision(reply_to=results[0].reply_to, response=response, budget_hold=hold,
                    cache_key=cache_key, guard_record=False if flags == {False} else None)
