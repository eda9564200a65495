"""modelbus_schemas: the one contract package — event models, topics, CloudEvents headers."""

from modelbus_schemas.codec import DecodeError, decode, encode
from modelbus_schemas.common import (
    Caller,
    ChatMessage,
    ContextBlock,
    DataClass,
    ErrorCode,
    ErrorInfo,
    GenerationParams,
    GuardrailFinding,
    ModelRef,
    Usage,
)
from modelbus_schemas.deadletter import DeadLetterInfo, DlqReason
from modelbus_schemas.plan import (
    BudgetHold,
    CascadeTier,
    ChainStage,
    CheckSpec,
    EnsembleSpec,
    ExecutionPlan,
    RetrySpec,
    Target,
)
from modelbus_schemas.events import (
    ApprovalDecisionEvent,
    ApprovalRequestEvent,
    AttemptRecord,
    PartSummary,
    Rejection,
    RequestEvent,
    ResponseEvent,
    ResultEvent,
    RoutingDecision,
    TaskEvent,
)

__all__ = [
    "ApprovalDecisionEvent", "ApprovalRequestEvent", "GuardrailFinding", "AttemptRecord", "BudgetHold", "Caller", "CascadeTier", "ChainStage", "ChatMessage",
    "CheckSpec", "ContextBlock", "EnsembleSpec", "ExecutionPlan", "RetrySpec", "Target", "DataClass", "DeadLetterInfo", "DecodeError",
    "DlqReason", "ErrorCode", "ErrorInfo", "GenerationParams", "ModelRef", "PartSummary",
    "Rejection", "RequestEvent", "ResponseEvent", "ResultEvent", "RoutingDecision", "TaskEvent",
    "Usage", "decode", "encode",
]
