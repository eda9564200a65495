"""The audit store's tables (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

``audit_events`` holds one row per audited message: identity, Kafka coordinates, the lineage
columns compliance searches by, the (redacted) JSON payload or a short excerpt of a body that
is not JSON, the non-secret headers, and the hash-chain columns (see :mod:`modelbus_audit.chain`).
Revision 0002 added token columns, ``payload_sha256`` and ``purged_at`` (retention); 0003 the
``identity`` derived from the event itself (:mod:`modelbus_audit.identity`), ``flags``
(conflict, unauthenticated, undecoded), the verified writer role and why a signature failed.
``audit_chain_heads`` holds the last sequence number and row hash of every chain; writers move a
head forward with a compare-and-set update, which keeps one writer per chain without
``SELECT ... FOR UPDATE`` and lets ``verify`` notice rows cut from the end of a chain.

The schema itself is created by the Alembic migrations in ``modelbus_audit/migrations``; a test
checks that these definitions and the migrations agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

#: 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
RowId = BigInteger().with_variant(Integer(), "sqlite")
HASH = String(64)
SHORT = String(256)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("event_id", String(300), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("request_id", SHORT),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("kafka_time", DateTime(timezone=True)),
    Column("ce_id", String(300)),
    Column("ce_type", String(128)),
    Column("ce_source", SHORT),
    Column("part_id", Integer),
    Column("tenant", SHORT),
    Column("team", SHORT),
    Column("caller_user", SHORT),
    Column("task", SHORT),
    Column("provider", SHORT),
    Column("model", SHORT),
    Column("data_class", String(32)),
    Column("status", String(32)),
    Column("cost_usd", Float),
    Column("policy_version", String(128)),
    Column("error_code", String(64)),
    Column("dlq_reason", String(32)),
    Column("dlq_source_topic", String(255)),
    Column("dlq_error", Text),
    Column("payload", JSON(none_as_null=True)),
    Column("body_excerpt", Text),
    Column("body_size", BigInteger, nullable=False),
    Column("body_sha256", HASH),
    Column("headers", JSON, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("chain", String(300), nullable=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("content_hash", HASH, nullable=False),
    Column("prev_hash", HASH, nullable=False),
    Column("row_hash", HASH, nullable=False),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("payload_sha256", HASH),
    Column("purged_at", DateTime(timezone=True)),
    Column("identity", String(300)),
    Column("flags", String(64)),
    Column("signed_by", String(64)),
    Column("auth_error", SHORT),
    UniqueConstraint("event_id"),
    UniqueConstraint("chain", "chain_seq"),
    Index(None, "request_id", "event_time"),
    Index(None, "tenant", "event_time"),
    Index(None, "provider", "model", "event_time"),
    Index(None, "policy_version"),
    Index(None, "data_class", "event_time"),
    Index(None, "kind", "event_time"),
    Index(None, "task"),
    Index(None, "event_time"),
    Index(None, "team", "event_time"),
    Index(None, "caller_user", "event_time"),
    Index(None, "status"),
    Index(None, "purged_at"),
    Index(None, "identity"),
    Index(None, "topic", "kafka_partition", "kafka_offset"),
    Index(None, "request_id", "tenant"),
)

audit_chain_heads = Table(
    "audit_chain_heads",
    metadata,
    Column("chain", String(300), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_row_hash", HASH, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: The text a retention purge may remove: it enters the row hash through ``payload_sha256``.
CONTENT_COLUMNS: tuple[str, ...] = ("payload", "body_excerpt", "dlq_error")
#: Columns outside the hash: the row id, the hashes themselves and the purge marker.
UNHASHED_COLUMNS = frozenset({"id", "content_hash", "prev_hash", "row_hash", "purged_at"})
#: The columns hashed directly into ``content_hash`` (see :mod:`modelbus_audit.chain`).
HASHED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in audit_events.columns
    if c.name not in UNHASHED_COLUMNS and c.name not in CONTENT_COLUMNS
)
#: Columns revision 0003 added: rows stored before it (no ``identity``) are hashed without them.
REV3_COLUMNS = frozenset({"identity", "flags", "signed_by", "auth_error"})
#: What ``content_hash`` covered in revision 0002 (``payload_sha256`` but no ``identity``).
REV2_HASHED_COLUMNS: tuple[str, ...] = tuple(c for c in HASHED_COLUMNS if c not in REV3_COLUMNS)
#: What ``content_hash`` covered before revision 0002 (rows without ``payload_sha256``).
LEGACY_HASHED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in audit_events.columns
    if c.name not in UNHASHED_COLUMNS
    and c.name not in {"input_tokens", "output_tokens", "payload_sha256"}
    and c.name not in REV3_COLUMNS
)
