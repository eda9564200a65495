"""Identity from the event itself, flags (conflict, unauthenticated, undecoded), the verified
writer role and the reason a signature failed; indexes for identity lookups, log positions
(``verify --against-broker``) and lineage by (request id, tenant).

Revision ID: 0003_identity_flags
Revises: 0002_privacy_usage
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_identity_flags"
down_revision = "0002_privacy_usage"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_audit_events_identity": ["identity"],
    "ix_audit_events_topic_kafka_partition_kafka_offset": ["topic", "kafka_partition",
                                                           "kafka_offset"],
    "ix_audit_events_request_id_tenant": ["request_id", "tenant"],
}


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("identity", sa.String(300)))
        batch.add_column(sa.Column("flags", sa.String(64)))
        batch.add_column(sa.Column("signed_by", sa.String(64)))
        batch.add_column(sa.Column("auth_error", sa.String(256)))
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_events", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("auth_error")
        batch.drop_column("signed_by")
        batch.drop_column("flags")
        batch.drop_column("identity")
