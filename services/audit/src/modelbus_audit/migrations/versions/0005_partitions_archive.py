"""PostgreSQL: ``audit_events`` partitioned by day on ``event_time``; both: the archive table.

On PostgreSQL the existing table is converted in one transaction: renamed aside, a partitioned
table of the same columns created (the id sequence moves over), a partition made for every day
that holds rows (and yesterday to three days ahead) plus the default partition, the rows
copied, the old table dropped, then the primary key (id, event_time), the unique keys (which
must include the partition key: (event_id, event_time) and (chain, chain_seq, event_time)) and
every index of the old table re-created on the partitioned one. A store already partitioned is
left as it is (the revision is safe to re-run after a manual conversion). SQLite keeps its
single table.

``audit_archives`` records each archived day: its manifest's object key and SHA-256, the
chain ranges it took from the live store, and its place in the archive's own hash chain
(:mod:`modelbus_audit.archive`).

Revision ID: 0005_partitions_archive
Revises: 0004_callers_rollup
Create Date: 2026-12-03
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from modelbus_audit import partitions

revision = "0005_partitions_archive"
down_revision = "0004_callers_rollup"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
HASH = sa.String(64)
ASIDE = "audit_events_unpartitioned"
KEYS = {
    True: ("(id, event_time)", ("event_id", "event_time"), ("chain", "chain_seq", "event_time")),
    False: ("(id)", ("event_id",), ("chain", "chain_seq")),
}


def upgrade() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("manifest_key", sa.String(1024), nullable=False),
        sa.Column("manifest_sha256", HASH, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("ranges", sa.JSON, nullable=False),
        sa.Column("made_at", TZ, nullable=False),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("record_hash", HASH, nullable=False),
        sa.Column("dropped_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_archives"),
        sa.UniqueConstraint("seq", name="uq_audit_archives_seq"),
    )
    op.create_index("ix_audit_archives_day", "audit_archives", ["day"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and not partitions.partitioned(bind):
        _convert(bind, partition=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and partitions.partitioned(bind):
        _convert(bind, partition=False)
    op.drop_table("audit_archives")


def _convert(bind, partition: bool) -> None:
    """Rebuild ``audit_events`` partitioned by day (or back into one table), rows and all."""
    run = lambda sql, **params: bind.execute(sa.text(sql), params)
    sequence = run("SELECT pg_get_serial_sequence('audit_events', 'id')").scalar()
    indexes = run(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_events' AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = 'audit_events'::regclass)"
    ).scalars().all()
    run(f"ALTER TABLE audit_events RENAME TO {ASIDE}")
    if sequence:
        run(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    how = " PARTITION BY RANGE (event_time)" if partition else ""
    run(f"CREATE TABLE audit_events (LIKE {ASIDE} INCLUDING DEFAULTS){how}")
    if partition:
        run(f"CREATE TABLE {partitions.DEFAULT} PARTITION OF audit_events DEFAULT")
        held = run(f"SELECT DISTINCT (event_time AT TIME ZONE 'UTC')::date FROM {ASIDE}")
        for day in sorted(held.scalars()):
            partitions.create(bind, day)
        partitions.ensure(bind, datetime.now(UTC).date())
    run(f"INSERT INTO audit_events SELECT * FROM {ASIDE}")
    run(f"DROP TABLE {ASIDE}")
    if sequence:
        run(f"ALTER SEQUENCE {sequence} OWNED BY audit_events.id")
    primary, event_key, chain_key = KEYS[partition]
    run(f"ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY {primary}")
    for columns in (event_key, chain_key):
        name = "uq_audit_events_" + "_".join(columns)
        run(f"ALTER TABLE audit_events ADD CONSTRAINT {name} UNIQUE ({', '.join(columns)})")
    for definition in indexes:
        run(re.sub(r" ON (ONLY )?(\S+\.)?audit_events ", " ON audit_events ", definition))
