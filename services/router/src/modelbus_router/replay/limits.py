"""Budgets and quotas simulated under the candidate policy, in memory: no Redis is read or
written.

The live router admits a request under its team's quotas (after the route, RBAC and input
guardrails; a request refused there never counts), plans it, then reserves the plan's
estimated cost on every budget of its tenant and team and, once answered, settles the
reservation with the actual cost. Replay does the same over the recorded requests in the
order and at the times they were recorded (:attr:`Recorded.at`), with counters that start
at zero at the first replayed request:

- quotas (:func:`modelbus_router.quotas.applicable`): fixed windows of the recorded time,
  per (tenant, team); past a quota the outcome is ``refused`` with ``quota_exceeded`` and
  the request does not count against that quota (it stays counted against the team's
  quotas checked before it, as in the router);
- budgets (:func:`modelbus_router.engine.budget_limits`): a request whose estimate would take
  a scope's committed spend in the period of its recorded time past the limit is
  ``refused`` with ``budget_exceeded``; otherwise the scope is charged the request's cost as
  replay estimates it (:func:`modelbus_router.replay.compare.estimate_cost`), as a settle
  would. Amounts are micro-dollars, as in Redis.

What it cannot know: spend and requests from before the replayed window or outside its
filters (``--tenant``, ``--team``, ``--sample``), and the interleaving of concurrent
requests. A request without a recorded time is not counted. Memory: one counter per scope,
for its current period or window only.
"""

from __future__ import annotations

from datetime import datetime

from modelbus_runtime.budgets import period_id, to_micros
from modelbus_schemas import ErrorCode
from modelbus_schemas.identity import scoped_id

from modelbus_router.engine import budget_limits
from modelbus_router.policy import Policy
from modelbus_router.quotas import WINDOW_S, applicable
from modelbus_router.replay.compare import estimate_cost
from modelbus_router.replay.decide import REFUSED, SERVED, DryDecision
from modelbus_router.replay.recorded import Recorded

#: Refusals decided before the router counts a request against its quotas.
BEFORE_QUOTAS = frozenset({ErrorCode.UNKNOWN_TASK, ErrorCode.FORBIDDEN,
                           ErrorCode.GUARDRAIL_DENIED, ErrorCode.INVALID_REQUEST})


class Limits:
    def __init__(self) -> None:
        self.quota_counts: dict[tuple[str, str], tuple[int, int]] = {}  # → (slot, requests)
        self.spend: dict[tuple[str, str], tuple[str, int]] = {}  # → (period id, micros)
        self.refused = {ErrorCode.QUOTA_EXCEEDED.value: 0, ErrorCode.BUDGET_EXCEEDED.value: 0}

    def admit(self, policy: Policy, recorded: Recorded, decision: DryDecision) -> DryDecision:
        """``decision``, or the refusal the candidate's quotas or budgets would give."""
        at = recorded.at
        if at is None or (decision.outcome == REFUSED and decision.error_code in BEFORE_QUOTAS):
            return decision
        refusal = self._quota(policy, recorded, at)
        if refusal is None and decision.outcome == SERVED:
            refusal = self._budget(policy, recorded, decision, at)
        if refusal is None:
            return decision
        code, message = refusal
        self.refused[code.value] += 1
        return DryDecision(REFUSED, decision.policy_version, error_code=code, error=message)

    def _quota(self, policy: Policy, recorded: Recorded, at: datetime):
        caller = recorded.request.caller
        for quota in applicable(policy.quotas, caller.team):
            key = (scoped_id(caller.tenant, caller.team), quota.per)
            slot = int(at.timestamp()) // WINDOW_S[quota.per]
            seen_slot, count = self.quota_counts.get(key, (slot, 0))
            count = count if seen_slot == slot else 0
            if count + 1 > quota.max_requests:  # as the router: earlier quotas stay counted
                return ErrorCode.QUOTA_EXCEEDED, (
                    f"quota exceeded: team {caller.team!r} may send {quota.max_requests} "
                    f"requests per {quota.per}")
            self.quota_counts[key] = (slot, count + 1)
        return None

    def _budget(self, policy: Policy, recorded: Recorded, decision: DryDecision, at: datetime):
        limits = budget_limits(policy, recorded.request)
        if not limits:
            return None
        reserve = to_micros(decision.estimated_cost_usd)
        current = []
        for limit in limits:
            period = period_id(limit.period, at)
            seen, micros = self.spend.get((limit.scope, limit.period), (period, 0))
            micros = micros if seen == period else 0
            if micros + reserve > to_micros(limit.limit_usd):
                return ErrorCode.BUDGET_EXCEEDED, (
                    f"budget exceeded for {limit.scope} ({limit.period}): {micros / 1e6:.6f} "
                    f"of {limit.limit_usd:.6f} USD committed, this request needs "
                    f"{decision.estimated_cost_usd:.6f} USD")
            current.append(((limit.scope, limit.period), period, micros))
        cost = to_micros(estimate_cost(policy, recorded, decision))
        for key, period, micros in current:
            self.spend[key] = (period, micros + cost)
        return None

