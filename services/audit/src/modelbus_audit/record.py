"""``AuditRecord``: one Kafka message (any topic, DLQs included) as the row the audit store keeps.

Built from plain values (topic, partition, offset, key, value, headers, timestamp) so it
knows nothing of Kafka clients. :meth:`AuditRecord.from_message` never raises: poison
messages and dead-letter records are audited too, as far as they can be read.

Event identity (what the store deduplicates and detects conflicts by, ``identity``):

- a record that decodes as its topic's event → ``<kind>:<the body's own id>``, with request
  id and tenant from the body (:mod:`modelbus_audit.identity`); never the ``ce_id`` header,
  which any writer sets as it likes;
- a dead-letter message (topic ``*.dlq`` or ``ce_type`` dead-letter) →
  ``dlq:<source_topic>:<partition>:<offset>`` from its ``modelbus_dlq_*`` headers — it keeps the
  original's headers, ``ce_id`` included, so ``ce_id`` would collide with the original event;
- else ``<topic>:<partition>:<offset>`` (position in the log, stable under redelivery), and
  the record is flagged ``undecoded``.

With a signing ring, records on topics only modelbus roles write are checked and flagged
``unauthenticated`` when their signature does not hold. ``event_id`` starts equal to the
identity; the store gives a second, different record of one identity its own row key and
flags it ``conflict`` (:mod:`modelbus_audit.store`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from modelbus_runtime.signing import KeyRing
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.deadletter import HEADER_PREFIX, DeadLetterInfo
from modelbus_schemas.topics import DLQ_SUFFIX

from modelbus_audit import sanitize as s
from modelbus_audit.flags import UNAUTHENTICATED, UNDECODED, join_flags
from modelbus_audit.identity import provenance

_KIND_BY_CE_TYPE = {
    ce.TYPE_REQUEST: "request",
    ce.TYPE_TASK: "task",
    ce.TYPE_RESULT: "result",
    ce.TYPE_RESPONSE: "response",
    ce.TYPE_DEAD_LETTER: "dead_letter",
}
_KIND_BY_TOPIC = re.compile(r"^modelbus\.(requests|tasks\.[^.]+|results|responses)\.v\d+$")
_TOPIC_WORD_TO_KIND = {"requests": "request", "results": "result", "responses": "response"}
_DLQ_FIELDS = frozenset(DeadLetterInfo.model_fields)
EVENT_ID_CHARS = 300
SHORT = 256


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What the audit store keeps about one message, before it is placed in its hash chain."""

    event_id: str
    kind: str
    topic: str
    kafka_partition: int
    kafka_offset: int
    event_time: datetime
    kafka_time: datetime | None = None
    request_id: str | None = None
    ce_id: str | None = None
    ce_type: str | None = None
    ce_source: str | None = None
    part_id: int | None = None
    tenant: str | None = None
    team: str | None = None
    caller_user: str | None = None
    task: str | None = None
    provider: str | None = None
    model: str | None = None
    data_class: str | None = None
    status: str | None = None
    cost_usd: float | None = None
    policy_version: str | None = None
    error_code: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    dlq_reason: str | None = None
    dlq_source_topic: str | None = None
    dlq_error: str | None = None
    payload: dict[str, Any] | None = None
    body_excerpt: str | None = None
    body_size: int = 0
    body_sha256: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    identity: str | None = None
    flags: str | None = None
    signed_by: str | None = None
    auth_error: str | None = None

    @property
    def identity_key(self) -> str:
        return self.identity or self.event_id

    @property
    def unauthenticated(self) -> bool:
        return UNAUTHENTICATED in (self.flags or "")

    @property
    def chain(self) -> str:
        """The hash chain this record belongs to: its source ``topic:partition``."""
        return f"{self.topic}:{self.kafka_partition}"

    def to_row(self) -> dict[str, Any]:
        """Column values (shallow: the payload is shared, not deep-copied as ``asdict`` would)."""
        row = {name: getattr(self, name) for name in _FIELD_NAMES}
        row["headers"] = [list(pair) for pair in self.headers]
        return row

    @classmethod
    def from_message(
        cls,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp_ms: int,
        ring: KeyRing | None = None,
    ) -> AuditRecord:
        """Read everything auditable from one message; never raises. With ``ring``, records
        on signed topics are authenticated (see :mod:`modelbus_audit.identity`)."""
        try:
            return _build(topic, partition, offset, key, value, headers, timestamp_ms, ring)
        except Exception:  # noqa: BLE001 - last line of defence: audit what we can
            try:
                return _fallback(topic, partition, offset, value, timestamp_ms)
            except Exception:  # noqa: BLE001 - even the coordinates are unreadable
                return _fallback("<unreadable>", 0, -1, None, None)


_FIELD_NAMES = tuple(f.name for f in fields(AuditRecord))


def _build(topic, partition, offset, key, value, headers, timestamp_ms, ring) -> AuditRecord:
    topic = s.decode_bytes(topic, 249) or "<no-topic>"
    partition = s.int_or_none(partition) or 0
    offset = _offset(offset)
    kept_headers = s.safe_headers(headers)
    hmap = {name: val for name, val in kept_headers}
    body = _as_bytes(value)
    payload = s.parse_json_object(body) if body else None
    # no secret-like string is ever written: payload, excerpt and headers are masked, and
    # the row records what kinds were (identity and hashes are taken from the raw record)
    masked = None  # a body no secret trigger occurs in is not walked (the walk changes nothing)
    if payload is not None and s.json_may_hold_secret(body):
        payload, masked = s.mask_tree(payload)
    kept_headers, masked = s.mask_strings(kept_headers, masked)
    excerpt, masked = s.mask_tree(s.excerpt(body) if body and payload is None else None,
                                  masked)
    if masked:
        kept_headers = [*kept_headers, s.masked_finding(masked)]
    fields = _payload_fields(payload or {})
    ce_type = s.text_or_none(hmap.get("ce_type"), 128)
    origin = provenance(ring, topic, _key_bytes(key), body, _raw_headers(headers))
    kind = _kind(topic, ce_type)
    if origin.decoded and kind != "dead_letter":
        kind = origin.kind or kind
    kafka_time = _from_ms(timestamp_ms)
    event_time = _parse_time(hmap.get("ce_time")) or kafka_time or datetime.now(UTC)
    ce_id = s.text_or_none(hmap.get("ce_id"), 4096)
    dlq: dict[str, Any] = {}
    if kind == "dead_letter" or any(name.startswith(HEADER_PREFIX) for name in hmap):
        dlq = _dead_letter_fields(hmap)
    position = f"{topic}:{partition}:{offset}"
    undecoded = None
    if kind == "dead_letter":
        event_id = dlq.pop("event_id", None) or position
        event_time = dlq.pop("failed_at", None) or kafka_time or event_time
    elif origin.decoded:
        event_id = bounded_id(origin.identity)
    else:
        event_id, undecoded = position, UNDECODED
    dlq.pop("event_id", None)
    dlq.pop("failed_at", None)
    key_text = s.decode_bytes(key, SHORT) if key else ""
    request_id = key_text or s.text_or_none((payload or {}).get("request_id"), SHORT)
    if origin.decoded:
        request_id = s.text_or_none(origin.request_id, SHORT)
        fields["tenant"] = s.text_or_none(origin.tenant)
    return AuditRecord(
        event_id=event_id,
        identity=event_id,
        flags=join_flags(undecoded, UNAUTHENTICATED if origin.auth_error else None),
        signed_by=s.text_or_none(origin.signed_by, 64),
        auth_error=s.text_or_none(origin.auth_error, SHORT),
        kind=kind,
        topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
        event_time=event_time,
        kafka_time=kafka_time,
        request_id=request_id,
        ce_id=s.clean_text(ce_id, EVENT_ID_CHARS) if ce_id else None,
        ce_type=ce_type,
        ce_source=s.text_or_none(hmap.get("ce_source"), SHORT),
        payload=payload,
        body_excerpt=excerpt,
        body_size=len(body),
        body_sha256=hashlib.sha256(body).hexdigest() if value is not None else None,
        headers=tuple((name, val) for name, val in kept_headers),
        **fields,
        **dlq,
    )


def _fallback(topic, partition, offset, value, timestamp_ms) -> AuditRecord:
    topic = s.decode_bytes(topic, 249) or "<no-topic>"
    partition = s.int_or_none(partition) or 0
    offset = _offset(offset)
    try:
        body = _as_bytes(value)
    except Exception:  # noqa: BLE001
        body = b""
    return AuditRecord(
        event_id=f"{topic}:{partition}:{offset}",
        identity=f"{topic}:{partition}:{offset}",
        flags=UNDECODED,
        kind="unknown",
        topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
        event_time=_from_ms(timestamp_ms) or datetime.now(UTC),
        body_excerpt=s.excerpt(body) if body else None,
        body_size=len(body),
    )


def _offset(value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    return value if ok else -1


def _raw_headers(headers: Any) -> list[tuple[str, bytes]]:
    """The well-formed headers as sent, for signature checks (anything odd is left out)."""
    out: list[tuple[str, bytes]] = []
    try:
        items = list(headers or ())
    except Exception:  # noqa: BLE001 - headers of any shape must not stop the audit
        return out
    for item in items:
        if isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str) \
                and isinstance(item[1], bytes | type(None)):
            out.append((item[0], item[1]))
    return out


def _key_bytes(key: Any) -> bytes | None:
    return bytes(key) if isinstance(key, bytes | bytearray | memoryview) else None


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "replace")


def bounded_id(value: str) -> str:
    """Long or odd ids are stored by digest so the unique key column stays bounded."""
    clean = s.clean_text(value, EVENT_ID_CHARS + 1)
    if len(clean) <= EVENT_ID_CHARS and clean == value:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _kind(topic: str, ce_type: str | None) -> str:
    if topic.endswith(DLQ_SUFFIX) or ce_type == ce.TYPE_DEAD_LETTER:
        return "dead_letter"
    if ce_type in _KIND_BY_CE_TYPE:
        return _KIND_BY_CE_TYPE[ce_type]
    match = _KIND_BY_TOPIC.match(topic)
    if match:
        word = match.group(1)
        return "task" if word.startswith("tasks.") else _TOPIC_WORD_TO_KIND[word]
    return "unknown"


def _payload_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The lineage columns, from whichever of them the payload carries."""
    caller = payload.get("caller") if isinstance(payload.get("caller"), dict) else {}
    decision = payload.get("decision") if isinstance(payload.get("decision"), dict) else {}
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    return {
        "part_id": s.int_or_none(payload.get("part_id")),
        "tenant": s.text_or_none(caller.get("tenant")) or s.text_or_none(payload.get("tenant")),
        "team": s.text_or_none(caller.get("team")),
        "caller_user": s.text_or_none(caller.get("user")),
        "task": s.text_or_none(payload.get("task")),
        "provider": s.text_or_none(payload.get("provider")),
        "model": s.text_or_none(payload.get("model")),
        "data_class": s.text_or_none(payload.get("data_class"), 32),
        "status": s.text_or_none(payload.get("status"), 32),
        "cost_usd": s.float_or_none(payload.get("cost_usd")),
        "policy_version": s.text_or_none(decision.get("policy_version"), 128)
        or s.text_or_none(payload.get("policy_version"), 128),
        "error_code": s.text_or_none(error.get("code"), 64),
        "input_tokens": _tokens(usage.get("input_tokens")),
        "output_tokens": _tokens(usage.get("output_tokens")),
    }


def _tokens(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62
    return value if ok else None


def _dead_letter_fields(hmap: dict[str, str]) -> dict[str, Any]:
    """Reason, source and id of a dead-letter message, from its ``modelbus_dlq_*`` headers."""
    raw = {k[len(HEADER_PREFIX):]: v for k, v in hmap.items() if k.startswith(HEADER_PREFIX)}
    out: dict[str, Any] = {
        "dlq_reason": s.text_or_none(raw.get("reason"), 32),
        "dlq_source_topic": s.text_or_none(raw.get("source_topic"), 249),
    }
    try:  # only the known fields: the publisher may add extras such as truncated_from
        info = DeadLetterInfo.model_validate({k: v for k, v in raw.items() if k in _DLQ_FIELDS})
    except Exception:  # noqa: BLE001 - incomplete headers: use what is there
        source, part = raw.get("source_topic"), raw.get("source_partition")
        off = raw.get("source_offset")
        if source and part and off and part.isdigit() and off.isdigit():
            out["event_id"] = s.clean_text(f"dlq:{source}:{part}:{off}", EVENT_ID_CHARS)
        out["dlq_error"] = s.text_or_none(raw.get("error_message"), 2048)
        return out
    out["event_id"] = s.clean_text(info.event_id(), EVENT_ID_CHARS)
    out["dlq_error"] = s.clean_text(f"{info.error_class}: {info.error_message}", 2048)
    out["failed_at"] = info.last_failure_at.astimezone(UTC)
    return out


def _from_ms(timestamp_ms: Any) -> datetime | None:
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms < 0:
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
