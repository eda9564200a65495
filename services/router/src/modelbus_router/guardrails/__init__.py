"""Guardrails of the router: input screening before dispatch, the hand-off of output-guard
settings to the aggregator, and the approval gate. All set per route in the policy
(:mod:`modelbus_router.guardrails.spec`). Kafka-free; the router's engine applies them."""

from modelbus_router.guardrails.approval import Approvals, Parked, approval_reasons
from modelbus_router.guardrails.handoff import (
    GuardRecords,
    build_record,
    needs_record,
    with_output_checks,
)
from modelbus_router.guardrails.inputs import GuardrailDenied, Screened, screen
from modelbus_router.guardrails.redaction import Redactor, restore
from modelbus_router.guardrails.spec import GuardrailsSpec, effective

__all__ = ["Approvals", "GuardRecords", "GuardrailDenied", "GuardrailsSpec", "Parked",
           "Redactor", "Screened", "approval_reasons", "build_record", "effective",
           "needs_record", "restore", "screen", "with_output_checks"]
