"""What a reader with a role gets back: stored events, lineages and text as plain dicts.

Role ``compliance`` sees what was stored (after ingest-time redaction); role ``ops`` sees
metadata only: payloads without prompt and response text (:func:`privacy.strip_text`) and no
excerpts of bodies that were not JSON. Every API answer, export and page goes through here,
so the rule lives in one place.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from modelbus_audit.flags import UNDECODED, flag_set
from modelbus_audit.lineage import Lineage
from modelbus_audit.privacy import strip_text
from modelbus_audit.stored import StoredEvent
from modelbus_audit.timeline import build_timeline


class Role(StrEnum):
    COMPLIANCE = "compliance"
    OPS = "ops"

    @property
    def reads_text(self) -> bool:
        return self is Role.COMPLIANCE


#: The columns of an exported row, in order (the payload last, as JSON text in CSV/Parquet);
#: ``req_*`` are the request's caller and data class, on every row of the request.
EXPORT_COLUMNS: tuple[str, ...] = (
    "id", "event_id", "kind", "request_id", "event_time", "topic", "kafka_partition",
    "kafka_offset", "ce_type", "ce_source", "part_id", "tenant", "team", "caller_user", "task",
    "provider", "model", "data_class", "status", "cost_usd", "input_tokens", "output_tokens",
    "policy_version", "error_code", "dlq_reason", "dlq_source_topic", "dlq_error", "body_size",
    "body_sha256", "chain", "chain_seq", "row_hash", "purged_at", "identity", "flags",
    "signed_by", "auth_error", "req_team", "req_user", "req_data_class", "body_excerpt",
    "payload",
)


def event_dict(event: StoredEvent, role: Role) -> dict[str, Any]:
    """One stored event, every exported column, text removed for ``ops``."""
    row = {name: getattr(event, name) for name in EXPORT_COLUMNS}
    for name, value in row.items():
        if isinstance(value, datetime):
            row[name] = value.isoformat()
    if not role.reads_text:
        raw = event.kind == "dead_letter" or UNDECODED in flag_set(event.flags)
        # an invalid or dead-lettered payload is raw caller input: its unknown fields can
        # hold anything, so ops sees none of it (the DLQ columns say what went wrong)
        row["payload"] = None if raw or event.payload is None else strip_text(event.payload)
        row["body_excerpt"] = None
    return row


def lineage_dict(lineage: Lineage, role: Role) -> dict[str, Any]:
    """The lineage tree, its timeline, and (compliance only) the stored prompt and answers."""
    out = lineage.to_dict()
    out["timeline"] = build_timeline(lineage)
    out["text_visible"] = role.reads_text
    if role.reads_text:
        out["text"] = text_of(lineage)
    else:
        _drop_key(out, "body_excerpt")
    return out


def text_of(lineage: Lineage) -> dict[str, Any]:
    """The stored prompt (messages, context) and every answer (part results, responses)."""
    request = (lineage.request.payload or {}) if lineage.request else {}
    if not request and lineage.parts and lineage.parts[0].tasks:
        request = lineage.parts[0].tasks[0].payload or {}
    return {
        "messages": _list(request.get("messages")),
        "context": _list(request.get("context")),
        "results": [
            {"part_id": part.part_id, "model": f"{r.provider}/{r.model}",
             "text": (r.payload or {}).get("text")}
            for part in lineage.parts for r in part.results
        ],
        "responses": [(r.payload or {}).get("output") for r in lineage.responses],
        "purged": any(e.purged_at is not None for e in lineage.events),
    }


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _drop_key(value: Any, key: str) -> None:
    if isinstance(value, dict):
        value.pop(key, None)
        for item in value.values():
            _drop_key(item, key)
    elif isinstance(value, list):
        for item in value:
            _drop_key(item, key)
