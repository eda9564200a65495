"""Building blocks shared by the event models: messages, caller identity, usage, errors."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from modelbus_schemas.base import Contract
from modelbus_schemas.content import (
    MAX_TEXT_CHARS,
    ContentPart,
    ImagePart,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolName,
    ToolSpec,
)

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


class DataClass(StrEnum):
    """Sensitivity of the data in a request, lowest to highest."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class ChatMessage(Contract):
    """One turn. ``content`` is a string or a list of parts (text, image, claim-check blob);
    an assistant turn may ask for ``tool_calls`` (its content may then be empty), and a
    ``tool`` turn answers the call named by ``tool_call_id``."""

    role: Literal["system", "user", "assistant", "tool"]
    content: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, min_length=1, max_length=128)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=256)
    name: ToolName | None = Field(
        default=None, description="on a tool turn: the function answered (found from the "
        "call when absent)")

    @model_validator(mode="after")
    def _shape(self) -> ChatMessage:
        if isinstance(self.content, list) and len(self.content) > 100:
            raise ValueError("a message holds at most 100 content parts")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only an assistant turn carries tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool turn needs tool_call_id, and only a tool turn has one")
        if self.content is None and self.tool_calls is None:
            raise ValueError("content is required unless an assistant turn has tool_calls")
        if self.role in ("system", "tool") and self.image_count():
            raise ValueError(f"a {self.role} turn holds text only")
        return self

    def parts(self) -> list[ContentPart]:
        """The content as parts (a string is one text part; no content is no parts)."""
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(text=self.content)]
        return list(self.content)

    @property
    def text(self) -> str:
        """Every text part joined by newlines: what token counts, guards and judges read."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.parts() if isinstance(p, TextPart))

    def image_count(self) -> int:
        return sum(1 for p in self.parts() if isinstance(p, ImagePart)
                   or (p.type == "blob" and p.blob.kind == "image"))

    def map_text(self, change: Callable[[str], str]) -> ChatMessage:
        """A copy with ``change`` applied to every text (content, text parts, tool-call
        arguments stay as they are: they are JSON the caller's tools parse)."""
        if self.content is None:
            return self
        if isinstance(self.content, str):
            return self.model_copy(update={"content": change(self.content)})
        parts = [p.model_copy(update={"text": change(p.text)}) if isinstance(p, TextPart)
                 else p for p in self.content]
        return self.model_copy(update={"content": parts})


class ContextBlock(Contract):
    """A piece of context (a document, a tool output) kept apart from the messages, so each
    provider gets it in the form it reads best (XML-tagged for Claude, Markdown for GPT and
    Gemini) and untrusted content stays marked as such."""

    title: str = Field(min_length=1, max_length=256)
    content: str = Field(max_length=1_000_000)
    trusted: bool = True


class GenerationParams(Contract):
    """How to generate: sampling, stop sequences, tools, the answer's format, and (for
    ``operation: embed``) the vector size. Provider limits narrower than these (for example
    four stop sequences on OpenAI) are met by the router and adapters, see docs/providers.md."""

    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] | None = Field(default=None, max_length=8)
    tools: list[ToolSpec] | None = Field(default=None, min_length=1, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    dimensions: int | None = Field(default=None, ge=1, le=8192,
                                   description="embedding size, for models that can shorten")

    @model_validator(mode="after")
    def _tools_consistent(self) -> GenerationParams:
        choice = self.tool_choice
        if choice is not None and choice != "none" and not self.tools:
            raise ValueError("tool_choice needs tools")
        named = None if choice is None or isinstance(choice, str) else choice.name
        if named is not None and named not in {t.name for t in self.tools or []}:
            raise ValueError(f"tool_choice names {named!r}, which is not in tools")
        if self.tools and len({t.name for t in self.tools}) != len(self.tools):
            raise ValueError("tool names must be unique")
        return self


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
    PAYLOAD_TOO_LARGE = "payload_too_large"
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
    STREAM_INTERRUPTED = "stream_interrupted"
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
