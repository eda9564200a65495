"""``StoredEvent``: one row of ``audit_events`` as read back, for lineage, rendering and queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from modelbus_audit.flags import flag_set

#: How the events of one request sort at the same event time.
KIND_ORDER: dict[str, int] = {
    "request": 0, "approval": 1, "decision": 1, "task": 1, "result": 2, "response": 3,
    "dead_letter": 4, "unknown": 5,
}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    event_id: str
    kind: str
    request_id: str | None
    event_time: datetime
    topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_time: datetime | None
    ce_id: str | None
    ce_type: str | None
    ce_source: str | None
    part_id: int | None
    tenant: str | None
    team: str | None
    caller_user: str | None
    task: str | None
    provider: str | None
    model: str | None
    data_class: str | None
    status: str | None
    cost_usd: float | None
    policy_version: str | None
    error_code: str | None
    input_tokens: int | None
    output_tokens: int | None
    dlq_reason: str | None
    dlq_source_topic: str | None
    dlq_error: str | None
    payload: dict[str, Any] | None
    body_excerpt: str | None
    body_size: int
    body_sha256: str | None
    headers: list[list[str]]
    stored_at: datetime
    chain: str
    chain_seq: int
    content_hash: str
    prev_hash: str
    row_hash: str
    payload_sha256: str | None
    purged_at: datetime | None
    identity: str | None = None
    flags: str | None = None
    signed_by: str | None = None
    auth_error: str | None = None
    req_team: str | None = None
    req_user: str | None = None
    req_data_class: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredEvent:
        data = dict(row)  # one pass over a database row; its key lookups are slow
        values = {name: data[name] for name in _FIELD_NAMES if name in data}
        for name in ("event_time", "kafka_time", "stored_at", "purged_at"):
            values[name] = as_utc(values[name])
        return cls(**values)

    @property
    def flag_set(self) -> frozenset[str]:
        return flag_set(self.flags)

    @property
    def genuine(self) -> bool:
        """Not a conflicting copy, not unauthenticated, decoded: a real step of its request."""
        return not self.flag_set

    def sort_key(self) -> tuple:
        """Event time, then request → task → result → response → dead letter, then part."""
        part = -1 if self.part_id is None else self.part_id
        return (self.event_time, KIND_ORDER.get(self.kind, 9), part, self.id)


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(StoredEvent))


def as_utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes from either back end (SQLite returns naive UTC values)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
