"""Add usage columns (tokens), the payload digest that lets retention purge text without
breaking the hash chain, the purge marker, and search indexes for team, user and status.

Revision ID: 0002_privacy_usage
Revises: 0001_audit_events
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_privacy_usage"
down_revision = "0001_audit_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("input_tokens", sa.BigInteger))
        batch.add_column(sa.Column("output_tokens", sa.BigInteger))
        batch.add_column(sa.Column("payload_sha256", sa.String(64)))
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True)))
    op.create_index("ix_audit_events_team_event_time", "audit_events", ["team", "event_time"])
    op.create_index(
        "ix_audit_events_caller_user_event_time", "audit_events", ["caller_user", "event_time"]
    )
    op.create_index("ix_audit_events_status", "audit_events", ["status"])
    op.create_index("ix_audit_events_purged_at", "audit_events", ["purged_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_purged_at", "audit_events")
    op.drop_index("ix_audit_events_status", "audit_events")
    op.drop_index("ix_audit_events_caller_user_event_time", "audit_events")
    op.drop_index("ix_audit_events_team_event_time", "audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("payload_sha256")
        batch.drop_column("output_tokens")
        batch.drop_column("input_tokens")
