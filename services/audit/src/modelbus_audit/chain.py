"""Tamper evidence: the hash chain every audit row belongs to, and how a row's hashes are made.

One chain per source ``topic:partition`` (one audit consumer owns a partition at a time, so
each chain has a single writer). For a row::

    payload_sha256 = sha256(canonical JSON of the text columns: payload, body_excerpt, dlq_error)
    content_hash = sha256(canonical JSON of every other stored column, payload_sha256 included;
                          not id, the hashes, or purged_at)
    prev_hash    = row_hash of the previous row of the chain (GENESIS for the first)
    row_hash     = sha256(prev_hash + content_hash)

and ``chain_seq`` counts 1, 2, 3, … within the chain. Editing a row breaks its content hash;
deleting or inserting a row in the middle breaks the sequence and the next row's ``prev_hash``;
cutting rows from the end disagrees with ``audit_chain_heads``. (Someone able to rewrite every
later row *and* the head can still forge a chain; anchoring heads outside the database, e.g.
signed periodic checkpoints, is the next step if that threat matters.)

Retention: the text columns enter ``content_hash`` only through ``payload_sha256``. A purge
(:mod:`modelbus_audit.retention`) empties them and sets ``purged_at``; verify then checks the
row against its stored ``payload_sha256`` and everything else as usual, so the chain still
verifies, while any edit of the metadata of a purged row, or of the text of a row that is not
purged, is still reported at that row. What a purge cannot hide is itself: ``purged_at`` shows.
Rows written before revision 0002 have no ``payload_sha256`` and are hashed the old way (all
columns), rows written before 0003 have no ``identity`` and are hashed without its columns, so
they stay verifiable (every newer row has an ``identity``; clearing it changes the hash).

The canonical form must survive a database round trip identically on SQLite and PostgreSQL:
datetimes are normalised to UTC ISO-8601 with microseconds (SQLite returns naive values),
JSON uses sorted keys, ASCII escapes and no NaN.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modelbus_audit.tables import (
    CONTENT_COLUMNS,
    HASHED_COLUMNS,
    LEGACY_HASHED_COLUMNS,
    REV2_HASHED_COLUMNS,
)

GENESIS = "0" * 64


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


#: The one encoder of the canonical form (made once: ``json.dumps`` with options builds one
#: per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                            allow_nan=False)


def _dumps(content: dict[str, Any]) -> bytes:
    return _ENCODER.encode(content).encode("ascii")


def canonical_json(row: Mapping[str, Any], columns: tuple[str, ...] = HASHED_COLUMNS) -> bytes:
    return _dumps({name: _canonical_value(value) if isinstance(value := row[name], datetime)
                   else value for name in columns})


def payload_digest(row: Mapping[str, Any]) -> str:
    """The digest of the purgeable text columns of ``row``."""
    return hashlib.sha256(canonical_json(row, CONTENT_COLUMNS)).hexdigest()


def content_hash(row: Mapping[str, Any]) -> str:
    if row.get("payload_sha256") is None:  # written before revision 0002
        return hashlib.sha256(canonical_json(row, LEGACY_HASHED_COLUMNS)).hexdigest()
    if row.get("identity") is None:  # written before revision 0003
        return hashlib.sha256(canonical_json(row, REV2_HASHED_COLUMNS)).hexdigest()
    return hashlib.sha256(canonical_json(row)).hexdigest()


def row_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("ascii")).hexdigest()


def seal(row: dict[str, Any], prev_hash: str) -> str:
    """Fill in the three hash columns of ``row`` (chain and chain_seq set); return its row hash."""
    row["payload_sha256"] = payload_digest(row)
    content = content_hash(row)
    row["content_hash"] = content
    row["prev_hash"] = prev_hash
    row["row_hash"] = row_hash(prev_hash, content)
    return row["row_hash"]


def row_problem(row: Mapping[str, Any], expected_seq: int, prev_hash: str) -> str | None:
    """Why ``row`` does not continue its chain after a row with ``prev_hash``, or None."""
    try:
        actual_content = content_hash(row)
        text_changed = (
            row.get("payload_sha256") is not None
            and row.get("purged_at") is None
            and payload_digest(row) != row["payload_sha256"]
        )
    except (TypeError, ValueError) as exc:
        return f"content cannot be hashed ({exc}): the row was altered"
    if text_changed:
        return "content_hash mismatch: the row's stored payload or text was changed"
    if actual_content != row["content_hash"]:
        return "content_hash mismatch: the row's stored content was changed"
    if row["chain_seq"] != expected_seq:
        return (
            f"chain_seq gap: expected {expected_seq}, found {row['chain_seq']} "
            "(rows before this one were deleted or renumbered)"
        )
    if row["prev_hash"] != prev_hash:
        return "prev_hash does not match the previous row's row_hash (chain was rewritten)"
    if row_hash(row["prev_hash"], row["content_hash"]) != row["row_hash"]:
        return "row_hash mismatch: the row's hash columns were changed"
    return None
