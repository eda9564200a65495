"""Building blocks shared by the event models: messages, caller identity, usage, errors."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

RequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Caller-chosen unique id of the request; the Kafka key on every topic.",
    ),
]
TopicName = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]


class Contract(BaseModel):
    """Base of every contract model: immutable, no unknown fields inside the contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DataClass(StrEnum):
    """Sensitivity of the data in a request, lowest to highest."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class ChatMessage(Contract):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class ContextBlock(Contract):
    """A piece of context (a document, a tool output) kept apart from the messages, so each
    provider gets it in the form it reads best (XML-tagged for Claude, Markdown for GPT and
    Gemini) and untrusted content stays marked as such."""

    title: str = Field(min_length=1, max_length=256)
    content: str = Field(max_length=1_000_000)
    trusted: bool = True


class GenerationParams(Contract):
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] | None = Field(default=None, max_length=8)


class Caller(Contract):
    """Who is asking: the identity RBAC, budgets and audit are keyed by."""

    tenant: str = Field(default="default", min_length=1, max_length=128)
    team: str | None = Field(default=None, max_length=128)
    user: str | None = Field(default=None, max_length=256)


class Usage(Contract):
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class ErrorCode(StrEnum):
    """Every error a caller can receive. See docs of the error hierarchy in modelbus_runtime."""

    UNKNOWN_TASK = "unknown_task"
    NO_ELIGIBLE_MODEL = "no_eligible_model"
    INVALID_REQUEST = "invalid_request"
    BUDGET_EXCEEDED = "budget_exceeded"
    QUOTA_EXCEEDED = "quota_exceeded"
    DUPLICATE_REQUEST = "duplicate_request"
    GUARDRAIL_DENIED = "guardrail_denied"
    APPROVAL_REJECTED = "approval_rejected"
    OUTPUT_INVALID = "output_invalid"
    FORBIDDEN = "forbidden"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    PROVIDER_TERMINAL = "provider_terminal"
    RETRIES_EXHAUSTED = "retries_exhausted"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    INTERNAL = "internal"


class ErrorInfo(Contract):
    code: ErrorCode
    message: str = Field(max_length=4096)
    retryable: bool = False


class ModelRef(Contract):
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


class GuardrailFinding(Contract):
    """What one guardrail did to a request or response, for lineage. Never the values:
    only categories and counts (for example ``{"card_number": 1}``)."""

    guard: str
    stage: Literal["input", "output"]
    mode: Literal["validate", "mutate", "flag"]
    action: Literal["allowed", "denied", "redacted", "flagged", "repaired"]
    categories: dict[str, int] = Field(default_factory=dict)
    detail: str | None = Field(default=None, max_length=512)
