"""The dead-letter record: the original bytes and headers, plus typed error headers.

A DLQ message keeps the failed message's key, value and headers untouched and adds the
``modelbus_dlq_*`` headers described by :class:`DeadLetterInfo`, so a redrive can send the
exact original bytes back to the source topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from modelbus_schemas import cloudevents as ce
from modelbus_schemas.common import Contract

HEADER_PREFIX = "modelbus_dlq_"


class DlqReason(StrEnum):
    SCHEMA = "schema"
    PROVIDER_TERMINAL = "provider_terminal"
    RETRIES_EXHAUSTED = "retries_exhausted"
    BUDGET = "budget"
    POLICY = "policy"
    TIMEOUT = "timeout"
    OVERSIZED = "oversized"
    UNHANDLED = "unhandled"
    UNAUTHENTICATED = "unauthenticated"


class DeadLetterInfo(Contract):
    """Why a message was dead-lettered; carried as ``modelbus_dlq_<field>`` headers."""

    CE_TYPE: ClassVar[str] = ce.TYPE_DEAD_LETTER

    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    service: str
    error_class: str
    error_message: str = Field(max_length=2048)
    reason: DlqReason
    attempts: int = Field(default=1, ge=1)
    first_failure_at: datetime
    last_failure_at: datetime

    def event_id(self) -> str:
        return f"dlq:{self.source_topic}:{self.source_partition}:{self.source_offset}"

    def to_headers(self) -> ce.Headers:
        out: ce.Headers = []
        for name, value in self.model_dump(mode="json").items():
            out.append((HEADER_PREFIX + name, str(value).encode()))
        return out

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> DeadLetterInfo:
        known = cls.model_fields
        fields = {
            k[len(HEADER_PREFIX) :]: v
            for k, v in headers.items()
            if k.startswith(HEADER_PREFIX) and k[len(HEADER_PREFIX) :] in known
        }
        return cls.model_validate(fields)

    @classmethod
    def now(cls, **fields: object) -> DeadLetterInfo:
        stamp = datetime.now(UTC)
        fields.setdefault("first_failure_at", stamp)
        fields.setdefault("last_failure_at", stamp)
        message = str(fields.get("error_message", ""))
        fields["error_message"] = message[:2048]
        return cls.model_validate(fields)
