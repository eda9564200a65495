"""CloudEvents Kafka protocol binding (binary content mode) header helpers.

Headers: ``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``, ``ce_time``,
``content-type`` and, when tracing, W3C ``traceparent``. The body is the event JSON.
Any Kafka client in any language can produce and consume with these headers alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]

TYPE_REQUEST = "io.modelbus.request.v1"
TYPE_TASK = "io.modelbus.task.v1"
TYPE_RESULT = "io.modelbus.result.v1"
TYPE_RESPONSE = "io.modelbus.response.v1"
TYPE_DEAD_LETTER = "io.modelbus.deadletter.v1"
TYPE_APPROVAL_REQUEST = "io.modelbus.approval.request.v1"
TYPE_APPROVAL_DECISION = "io.modelbus.approval.decision.v1"


def ce_headers(
    *,
    event_id: str,
    ce_type: str,
    source: str,
    time: datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> Headers:
    """Build binary-mode CloudEvents headers for one event."""
    stamp = (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    headers: Headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", stamp.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if extra:
        headers += [(k, v.encode()) for k, v in extra.items()]
    return headers


def header_map(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Decode Kafka headers into a dict; undecodable values are replaced, never raised."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        out[key] = value.decode("utf-8", "replace") if value is not None else ""
    return out
