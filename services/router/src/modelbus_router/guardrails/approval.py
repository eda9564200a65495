"""The approval gate: requests a human must approve before they are served.

A route's ``guardrails.approval`` says when (data class, estimated cost, a metadata flag).
Such a request is *parked*: kept in Redis (hash ``modelbus:approval:{<scoped id>}``, the
scoped id being :func:`~modelbus_schemas.identity.scoped_id` of tenant and request id, with
the route's TTL) and announced on ``modelbus.approvals.pending.v1`` as an
:class:`ApprovalRequestEvent` (no prompt text on it). An approver publishes an
:class:`ApprovalDecisionEvent` on ``modelbus.approvals.decisions.v1``; the router's second
consumer records it — the first decision for a request wins, later ones change nothing — and
routes the parked request again (the gate now lets it through) or answers it with
``approval_rejected``. A decision names the request by id; two tenants may park the same id,
so a decision carrying a ``tenant`` is looked up under that tenant, and one without (the
contract before tenant-scoped identity) is applied only when exactly one tenant parked that
request id (an index ``modelbus:approval:ids:{<request id>}`` of the scoped ids parked
under it); otherwise it changes nothing and is logged. Every step is idempotent by request id: a redelivered request or
decision re-publishes the same events (same ids) and acts on the stored decision.

The parked request is the original, unredacted one (it is routed again through the input
guardrails when approved); it lives only in Redis, never on an event, and expires with the
TTL. The audit consumer stores both approval topics, so the lineage of the request shows
who approved or rejected it and when; the approver also appears in the decision's findings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import ApprovalDecisionEvent, ApprovalRequestEvent, RequestEvent
from modelbus_schemas.identity import scoped_id
from redis.exceptions import RedisError

from modelbus_router.guardrails.spec import ApprovalSpec

log = logging.getLogger(__name__)

KEY_PREFIX = "modelbus:approval:"

# KEYS[1] the parked hash. ARGV: state, approver, comment, decided_at.
# Returns the stored hash (flattened) after the first decision, or {} if nothing is parked.
_DECIDE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
if redis.call('HGET', KEYS[1], 'state') == 'pending' then
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'approver', ARGV[2], 'comment', ARGV[3],
             'decided_at', ARGV[4])
end
return redis.call('HGETALL', KEYS[1])
"""


def key_of(scope: str) -> str:
    """The parked hash of a request; ``scope`` is its scoped id."""
    return f"{KEY_PREFIX}{{{scope}}}"


def index_of(request_id: str) -> str:
    """The set of scoped ids parked under a bare request id (for tenant-less decisions)."""
    return f"{KEY_PREFIX}ids:{{{request_id}}}"


def approval_reasons(spec: ApprovalSpec | None, request: RequestEvent,
                     estimated_cost_usd: float) -> list[str]:
    """Why this request needs approval; empty when it does not."""
    if spec is None:
        return []
    reasons = []
    if spec.data_classes and request.data_class in spec.data_classes:
        reasons.append(f"data_class {request.data_class.value}")
    if spec.min_estimated_cost_usd is not None and estimated_cost_usd >= spec.min_estimated_cost_usd:
        reasons.append(f"estimated cost ${estimated_cost_usd:.4f} >= "
                       f"${spec.min_estimated_cost_usd:.4f}")
    for key, value in (spec.metadata or {}).items():
        got = request.metadata.get(key)
        if got is not None and (value == "*" or got == value):
            reasons.append(f"metadata {key}={got}")
    return reasons


@dataclass(frozen=True)
class Parked:
    request: RequestEvent
    state: str  # pending | approved | rejected
    approver: str | None = None
    comment: str | None = None


class Approvals:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._decide = redis.register_script(_DECIDE)

    async def state(self, scope: str) -> Parked | None:
        try:
            raw = await self.redis.hgetall(key_of(scope))
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for approvals: {exc}") from exc
        return _parked(raw)

    async def park(self, request: RequestEvent, spec: ApprovalSpec, reasons: list[str],
                   estimated_cost_usd: float, policy_version: str,
                   now: datetime | None = None) -> ApprovalRequestEvent:
        """Keep the request (first park wins) and the event announcing it."""
        now = now or datetime.now(UTC)
        scope = scoped_id(request.caller.tenant, request.request_id)
        key, index = key_of(scope), index_of(request.request_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(key, "request", request.model_dump_json())
                pipe.hsetnx(key, "state", "pending")
                pipe.hsetnx(key, "parked_at", now.isoformat())
                pipe.expire(key, spec.ttl_s)
                pipe.sadd(index, scope)
                pipe.expire(index, spec.ttl_s)
                pipe.hget(key, "parked_at")
                *_, parked_at = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for approvals: {exc}") from exc
        requested_at = datetime.fromisoformat(parked_at.decode())
        return ApprovalRequestEvent(
            event_id=ApprovalRequestEvent.make_id(scope),
            request_id=request.request_id, task=request.task, reason="; ".join(reasons),
            estimated_cost_usd=round(estimated_cost_usd, 8), data_class=request.data_class,
            caller=request.caller, policy_version=policy_version, requested_at=requested_at,
            expires_at=requested_at + timedelta(seconds=spec.ttl_s),
        )

    async def decide(self, decision: ApprovalDecisionEvent) -> Parked | None:
        """Record the first decision; the parked request with the decision that stands."""
        state = "approved" if decision.approved else "rejected"
        scope = await self._scope_of(decision)
        if scope is None:
            return None
        try:
            raw = await self._decide(keys=[key_of(scope)], args=[
                state, decision.approver, decision.comment or "",
                decision.decided_at.isoformat()])
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for approvals: {exc}") from exc
        it = iter(raw or [])
        return _parked(dict(zip(it, it, strict=True)))

    async def _scope_of(self, decision: ApprovalDecisionEvent) -> str | None:
        tenant = getattr(decision, "tenant", None)
        if tenant:
            return scoped_id(tenant, decision.request_id)
        try:
            members = await self.redis.smembers(index_of(decision.request_id))
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for approvals: {exc}") from exc
        if len(members) != 1:
            if members:
                log.warning("approval decision names no tenant and %d tenants parked its "
                            "request id: ignored", len(members))
            return None
        [scope] = members
        return scope.decode() if isinstance(scope, bytes) else scope


def _parked(raw: dict) -> Parked | None:
    fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                           else v) for k, v in raw.items()}
    if "request" not in fields:
        return None
    return Parked(RequestEvent.model_validate_json(fields["request"]),
                  fields.get("state", "pending"), fields.get("approver") or None,
                  fields.get("comment") or None)
