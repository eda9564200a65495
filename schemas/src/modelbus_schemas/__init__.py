"""modelbus_schemas: the one contract package — event models, topics, CloudEvents headers.

Names are loaded on first use (PEP 562), so ``from modelbus_schemas.topics import ...`` or a
CLI that only needs topic names does not pay for building every pydantic model.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_SOURCES: dict[str, str] = {
    "ApprovalDecisionEvent": "modelbus_schemas.events",
    "ApprovalRequestEvent": "modelbus_schemas.events",
    "AttemptRecord": "modelbus_schemas.events",
    "BlobPart": "modelbus_schemas.content",
    "BlobRef": "modelbus_schemas.content",
    "BudgetHold": "modelbus_schemas.plan",
    "Caller": "modelbus_schemas.common",
    "CascadeTier": "modelbus_schemas.plan",
    "ChainStage": "modelbus_schemas.plan",
    "ChatMessage": "modelbus_schemas.common",
    "CheckSpec": "modelbus_schemas.plan",
    "ContextBlock": "modelbus_schemas.common",
    "DataClass": "modelbus_schemas.common",
    "DeadLetterInfo": "modelbus_schemas.deadletter",
    "DecodeError": "modelbus_schemas.codec",
    "DlqReason": "modelbus_schemas.deadletter",
    "EnsembleSpec": "modelbus_schemas.plan",
    "ErrorCode": "modelbus_schemas.common",
    "ErrorInfo": "modelbus_schemas.common",
    "ExecutionPlan": "modelbus_schemas.plan",
    "GenerationParams": "modelbus_schemas.common",
    "GuardrailFinding": "modelbus_schemas.common",
    "ImagePart": "modelbus_schemas.content",
    "JsonSchemaFormat": "modelbus_schemas.content",
    "ModelRef": "modelbus_schemas.common",
    "NamedToolChoice": "modelbus_schemas.content",
    "PartSummary": "modelbus_schemas.events",
    "PolicyAnswer": "modelbus_schemas.shadow",
    "Rejection": "modelbus_schemas.events",
    "RequestEvent": "modelbus_schemas.events",
    "ResponseEvent": "modelbus_schemas.events",
    "ResponseFormat": "modelbus_schemas.content",
    "ResultEvent": "modelbus_schemas.events",
    "RetrySpec": "modelbus_schemas.plan",
    "RoutingDecision": "modelbus_schemas.events",
    "ShadowDecisionEvent": "modelbus_schemas.shadow",
    "StreamEvent": "modelbus_schemas.stream",
    "Target": "modelbus_schemas.plan",
    "TaskEvent": "modelbus_schemas.events",
    "TextPart": "modelbus_schemas.content",
    "ToolCall": "modelbus_schemas.content",
    "ToolCallDelta": "modelbus_schemas.stream",
    "ToolSpec": "modelbus_schemas.content",
    "Usage": "modelbus_schemas.common",
    "decode": "modelbus_schemas.codec",
    "encode": "modelbus_schemas.codec",
}

__all__ = [
    "ApprovalDecisionEvent",
    "ApprovalRequestEvent",
    "AttemptRecord",
    "BlobPart",
    "BlobRef",
    "BudgetHold",
    "Caller",
    "CascadeTier",
    "ChainStage",
    "ChatMessage",
    "CheckSpec",
    "ContextBlock",
    "DataClass",
    "DeadLetterInfo",
    "DecodeError",
    "DlqReason",
    "EnsembleSpec",
    "ErrorCode",
    "ErrorInfo",
    "ExecutionPlan",
    "GenerationParams",
    "GuardrailFinding",
    "ImagePart",
    "JsonSchemaFormat",
    "ModelRef",
    "NamedToolChoice",
    "PartSummary",
    "PolicyAnswer",
    "Rejection",
    "RequestEvent",
    "ResponseEvent",
    "ResponseFormat",
    "ResultEvent",
    "RetrySpec",
    "RoutingDecision",
    "ShadowDecisionEvent",
    "StreamEvent",
    "Target",
    "TaskEvent",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
    "decode",
    "encode",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))

