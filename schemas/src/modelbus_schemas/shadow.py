"""Shadow routing decisions: what a candidate policy would have done with a live request.

A router with a shadow policy loaded routes every request under both policies, dispatches
only the active decision, and publishes one :class:`ShadowDecisionEvent` per request on
``modelbus.decisions.shadow.v1`` (signed by the router; audited like every topic). The
event carries both answers and whether they agree, so ``modelbus shadow report`` can
summarise agreement, cost and compliance-surface changes without re-routing anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from modelbus_schemas.base import Contract
from modelbus_schemas.common import DataClass, ErrorCode, RequestId
from modelbus_schemas.events import RoutingDecision

TYPE_SHADOW_DECISION = "io.modelbus.decision.shadow.v1"

Outcome = Literal["served", "refused", "parked"]


class PolicyAnswer(Contract):
    """One policy's answer for a request."""

    policy_version: str
    outcome: Outcome
    decision: RoutingDecision | None = None
    error_code: ErrorCode | None = None
    estimated_cost_usd: float = Field(default=0.0, ge=0)
    reach: list[str] = Field(default_factory=list, max_length=256,
                             description="provider/model of every model the request reaches")


class ShadowDecisionEvent(Contract):
    """The active and the shadow policy's answers for one request (only the active one
    was acted on)."""

    CE_TYPE: ClassVar[str] = TYPE_SHADOW_DECISION

    event_id: str = Field(max_length=300)
    request_id: RequestId
    tenant: str = Field(min_length=1, max_length=128)
    team: str | None = Field(default=None, max_length=128)
    task: str = Field(max_length=64)
    data_class: DataClass
    active: PolicyAnswer
    shadow: PolicyAnswer
    agree: bool = Field(description="same outcome and same selected models")
    created_at: datetime

    @staticmethod
    def make_id(scope: str) -> str:
        """``scope``: the request's :func:`~modelbus_schemas.identity.scoped_id`."""
        return f"{scope}:shadow"
