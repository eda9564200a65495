"""The audit store's tables (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

``audit_events`` holds one row per audited message: identity, Kafka coordinates, the lineage
columns compliance searches by, the (redacted) JSON payload or a short excerpt of a body that
is not JSON, the non-secret headers, and the hash-chain columns (see :mod:`modelbus_audit.chain`).
Revision 0002 added token columns, ``payload_sha256`` and ``purged_at`` (retention); 0003 the
``identity`` derived from the event itself (:mod:`modelbus_audit.identity`), ``flags``
(conflict, unauthenticated, undecoded), the verified writer role and why a signature failed;
0004 the request's caller on every row (``req_team``, ``req_user``, ``req_data_class``: copied
from the request of the same (tenant, request id), so a team filter finds its results,
responses and dead letters too; derived, so outside the hash — see :mod:`modelbus_audit.callers`),
indexes shaped like the searches (filter column, ``event_time``, ``id``: the keyset order), the
hourly usage rollup ``audit_usage_hourly`` (:mod:`modelbus_audit.rollup`) and the signed chain
checkpoints ``audit_checkpoints`` (:mod:`modelbus_audit.checkpoints`); 0005 partitions
``audit_events`` by day on PostgreSQL (:mod:`modelbus_audit.partitions`: there the primary key
is (id, event_time) and the unique keys end in ``event_time``, as a partitioned table needs;
SQLite keeps the keys below) and adds ``audit_archives``, the archived days and their hash chain
(:mod:`modelbus_audit.archive`).
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
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
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

#: Search keys that get an index ending in the keyset order (event_time, id) — revision 0004.
SEARCH_INDEXES: tuple[tuple[str, ...], ...] = (
    (), ("tenant",), ("req_team",), ("req_user",), ("req_data_class",), ("kind",), ("status",),
)

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
    Column("req_team", SHORT),
    Column("req_user", SHORT),
    Column("req_data_class", String(32)),
    UniqueConstraint("event_id"),
    UniqueConstraint("chain", "chain_seq"),
    Index(None, "request_id", "event_time"),
    Index(None, "provider", "model", "event_time"),
    Index(None, "policy_version"),
    Index(None, "task"),
    Index(None, "purged_at"),
    *(Index(None, *columns, "event_time", "id") for columns in SEARCH_INDEXES),
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

#: Usage by hour × tenant × team × provider × model, kept up to date at ingestion. Keys are
#: never NULL ('' stands for "none") so the upsert's conflict target always matches.
audit_usage_hourly = Table(
    "audit_usage_hourly",
    metadata,
    Column("hour", DateTime(timezone=True), nullable=False),
    Column("tenant", SHORT, nullable=False),
    Column("team", SHORT, nullable=False),
    Column("provider", SHORT, nullable=False),
    Column("model", SHORT, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("results", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    PrimaryKeyConstraint("hour", "tenant", "team", "provider", "model"),
)

#: Signed snapshots of chain heads: verification continues from the newest one.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("chain", String(300), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_row_hash", HASH, nullable=False),
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Index(None, "chain", "last_seq"),
)

#: One row per archived day: where its manifest is, what it hashes to, the chain runs it took
#: from the live store (``ranges``: chain → [[first seq, last seq, prev hash, last row hash]]),
#: chained by ``prev_hash``/``record_hash`` (see :mod:`modelbus_audit.archive`).
audit_archives = Table(
    "audit_archives",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("manifest_key", String(1024), nullable=False),
    Column("manifest_sha256", HASH, nullable=False),
    Column("files", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("ranges", JSON, nullable=False),
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("prev_hash", HASH, nullable=False),
    Column("record_hash", HASH, nullable=False),
    Column("dropped_at", DateTime(timezone=True)),
    UniqueConstraint("seq"),
    Index(None, "day"),
)

#: Columns derived from other rows at ingestion (revision 0004): outside the hash.
DERIVED_COLUMNS = frozenset({"req_team", "req_user", "req_data_class"})
#: The text a retention purge may remove: it enters the row hash through ``payload_sha256``.
CONTENT_COLUMNS: tuple[str, ...] = ("payload", "body_excerpt", "dlq_error")
#: Columns outside the hash: the row id, the hashes themselves and the purge marker.
UNHASHED_COLUMNS = frozenset({"id", "content_hash", "prev_hash", "row_hash", "purged_at",
                              *DERIVED_COLUMNS})
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
