"""The message a handler receives: the broker's record, decoupled from the Kafka client."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from modelbus_schemas import DecodeError, decode
from modelbus_schemas.cloudevents import header_map
from pydantic import BaseModel

from modelbus_runtime.errors import PoisonMessage

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=False)
class Inbound:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int = 0
    #: the role whose signature the consumer verified (None: not checked or not signed)
    signed_by: str | None = None

    @cached_property
    def header_map(self) -> dict[str, str]:
        return header_map(self.headers)

    @property
    def request_id(self) -> str | None:
        return self.key.decode("utf-8", "replace") if self.key else None

    def decode(self, model: type[M]) -> M:
        """The body as a contract event; a body that is not one is a poison message."""
        try:
            return decode(model, self.value)
        except DecodeError as exc:
            raise PoisonMessage(str(exc)) from None

    def event_id(self) -> bytes | None:
        """The raw ``ce_id`` header, found without decoding every header."""
        for name, value in self.headers:
            if name == "ce_id":
                return value
        return None

    def passthrough_headers(self) -> dict[str, str]:
        """Headers carried from input to output: the trace context."""
        trace = self.header_map.get("traceparent")
        return {"traceparent": trace} if trace else {}

    @classmethod
    def from_record(cls, record) -> Inbound:  # aiokafka ConsumerRecord
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
            timestamp_ms=record.timestamp or 0,
        )
