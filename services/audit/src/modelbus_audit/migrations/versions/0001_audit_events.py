"""Create audit_events (lineage rows with hash chain) and audit_chain_heads.

Revision ID: 0001_audit_events
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_audit_events"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(256)),
        sa.Column("event_time", TZ, nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=False),
        sa.Column("kafka_offset", sa.BigInteger, nullable=False),
        sa.Column("kafka_time", TZ),
        sa.Column("ce_id", sa.String(300)),
        sa.Column("ce_type", sa.String(128)),
        sa.Column("ce_source", sa.String(256)),
        sa.Column("part_id", sa.Integer),
        sa.Column("tenant", sa.String(256)),
        sa.Column("team", sa.String(256)),
        sa.Column("caller_user", sa.String(256)),
        sa.Column("task", sa.String(256)),
        sa.Column("provider", sa.String(256)),
        sa.Column("model", sa.String(256)),
        sa.Column("data_class", sa.String(32)),
        sa.Column("status", sa.String(32)),
        sa.Column("cost_usd", sa.Float),
        sa.Column("policy_version", sa.String(128)),
        sa.Column("error_code", sa.String(64)),
        sa.Column("dlq_reason", sa.String(32)),
        sa.Column("dlq_source_topic", sa.String(255)),
        sa.Column("dlq_error", sa.Text),
        sa.Column("payload", sa.JSON(none_as_null=True)),
        sa.Column("body_excerpt", sa.Text),
        sa.Column("body_size", sa.BigInteger, nullable=False),
        sa.Column("body_sha256", sa.String(64)),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("stored_at", TZ, nullable=False),
        sa.Column("chain", sa.String(300), nullable=False),
        sa.Column("chain_seq", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
        sa.UniqueConstraint("chain", "chain_seq", name="uq_audit_events_chain_chain_seq"),
    )
    indexes = {
        "ix_audit_events_request_id_event_time": ["request_id", "event_time"],
        "ix_audit_events_tenant_event_time": ["tenant", "event_time"],
        "ix_audit_events_provider_model_event_time": ["provider", "model", "event_time"],
        "ix_audit_events_policy_version": ["policy_version"],
        "ix_audit_events_data_class_event_time": ["data_class", "event_time"],
        "ix_audit_events_kind_event_time": ["kind", "event_time"],
        "ix_audit_events_task": ["task"],
        "ix_audit_events_event_time": ["event_time"],
    }
    for name, columns in indexes.items():
        op.create_index(name, "audit_events", columns)
    op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(300), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_row_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_chain_heads"),
    )


def downgrade() -> None:
    op.drop_table("audit_chain_heads")
    op.drop_table("audit_events")
