"""Stream events: a request's answer as the provider produces it (``modelbus.stream.v1``).

A request with ``stream: true`` gets, besides its one final response, the answering
target's output in pieces while it is generated. The adapter worker publishes them, signed,
keyed by the request's scoped id (so they stay ordered on one partition), coalescing the
provider's deltas into one event per short interval or number of deltas.

One stream per request: events are numbered by ``seq`` from 0 and the last one has
``kind`` ``end`` (the answer is complete: finish reason and usage) or ``error`` (the
provider's stream broke after output had left modelbus; no retry or fallback follows, and
the final response carries the error). The final :class:`~modelbus_schemas.ResponseEvent`
stays the source of truth: guardrails, checks and ensembles may decide differently from
what streamed, which is why routes with whole-text output checks do not stream at all.

Plans that stream: ``single`` and ``fallback`` (the answering target), ``chain`` (its last
stage only). ``cascade`` and ``ensemble`` stream nothing; their caller gets the final
response only.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from modelbus_schemas.base import Contract
from modelbus_schemas.common import ErrorInfo, RequestId, Usage
from modelbus_schemas.content import MAX_TEXT_CHARS

TYPE_STREAM = "io.modelbus.stream.v1"

StreamKind = Literal["delta", "end", "error"]


class ToolCallDelta(Contract):
    """A fragment of a tool call: ``index`` names the call (0, 1, ... in the order the model
    began them); ``id`` and ``name`` arrive with its first fragment, ``arguments`` is the
    next piece of its JSON text, to be appended."""

    index: int = Field(ge=0, le=127)
    id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=64)
    arguments: str = Field(default="", max_length=MAX_TEXT_CHARS)


class StreamEvent(Contract):
    """Output since the previous event of the same request's stream."""

    CE_TYPE: ClassVar[str] = TYPE_STREAM

    event_id: str = Field(max_length=400)
    request_id: RequestId
    tenant: str = Field(min_length=1, max_length=128)
    task: str = Field(max_length=64)
    part_id: int = Field(default=0, ge=0)
    step: int = Field(default=0, ge=0, description="the chain stage that streams")
    seq: int = Field(ge=0, description="0, 1, 2, ... within the request's stream")
    kind: StreamKind = "delta"
    provider: str
    model: str
    text: str = Field(default="", max_length=MAX_TEXT_CHARS,
                      description="text to append to what streamed before")
    tool_calls: list[ToolCallDelta] = Field(default_factory=list, max_length=128)
    finish_reason: str | None = Field(default=None, description="on the end event")
    usage: Usage | None = Field(default=None, description="on the end event, when known")
    error: ErrorInfo | None = Field(default=None, description="on the error event")
    created_at: datetime

    @staticmethod
    def make_id(scope: str, seq: int) -> str:
        """``scope``: the request's :func:`~modelbus_schemas.identity.scoped_id`."""
        return f"{scope}:stream:{seq}"
