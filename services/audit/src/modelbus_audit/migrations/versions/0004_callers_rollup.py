"""The request's caller on every row (backfilled from the request of the same (tenant, request
id)), search indexes ending in the keyset order (event_time, id), the hourly usage rollup
(built from the stored results) and the signed chain checkpoints.

The caller columns are derived, outside the hash chain: the backfill changes no row hash.

Revision ID: 0004_callers_rollup
Revises: 0003_identity_flags
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_callers_rollup"
down_revision = "0003_identity_flags"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
SHORT = sa.String(256)
#: Superseded by the keyset-shaped indexes below (a filter column, event_time, id).
OLD_INDEXES = {
    "ix_audit_events_tenant_event_time": ["tenant", "event_time"],
    "ix_audit_events_data_class_event_time": ["data_class", "event_time"],
    "ix_audit_events_kind_event_time": ["kind", "event_time"],
    "ix_audit_events_event_time": ["event_time"],
    "ix_audit_events_team_event_time": ["team", "event_time"],
    "ix_audit_events_caller_user_event_time": ["caller_user", "event_time"],
    "ix_audit_events_status": ["status"],
}
SEARCH_KEYS = ((), ("tenant",), ("req_team",), ("req_user",), ("req_data_class",), ("kind",),
               ("status",))
NEW_INDEXES = {
    "ix_audit_events_" + "_".join((*key, "event_time", "id")): [*key, "event_time", "id"]
    for key in SEARCH_KEYS
}

_OWN_CALLER = """
UPDATE audit_events SET req_team = team, req_user = caller_user, req_data_class = data_class
WHERE kind IN ('request', 'task')
"""
_REQUEST_CALLER = """
UPDATE audit_events SET req_team = src.team, req_user = src.caller_user,
       req_data_class = src.data_class
FROM (SELECT request_id, tenant, MAX(team) AS team, MAX(caller_user) AS caller_user,
             MAX(data_class) AS data_class
      FROM audit_events
      WHERE kind IN ('request', 'task') AND flags IS NULL
      GROUP BY request_id, tenant) AS src
WHERE audit_events.request_id = src.request_id AND audit_events.tenant = src.tenant
  AND audit_events.kind NOT IN ('request', 'task')
"""
_HOUR = {
    "postgresql": "date_trunc('hour', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', event_time)",
}
_ROLLUP = """
INSERT INTO audit_usage_hourly (hour, tenant, team, provider, model, requests, results,
                                input_tokens, output_tokens, cost_usd)
SELECT {hour}, COALESCE(tenant, ''), COALESCE(req_team, ''), COALESCE(provider, ''),
       COALESCE(model, ''), COUNT(DISTINCT request_id), COUNT(*),
       SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)),
       SUM(COALESCE(cost_usd, 0.0))
FROM audit_events
WHERE kind = 'result' AND flags IS NULL
GROUP BY {hour}, COALESCE(tenant, ''), COALESCE(req_team, ''), COALESCE(provider, ''),
         COALESCE(model, '')
"""


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("req_team", SHORT))
        batch.add_column(sa.Column("req_user", SHORT))
        batch.add_column(sa.Column("req_data_class", sa.String(32)))
    op.execute(_OWN_CALLER)
    op.execute(_REQUEST_CALLER)
    for name in OLD_INDEXES:
        op.drop_index(name, "audit_events")
    for name, columns in NEW_INDEXES.items():
        op.create_index(name, "audit_events", columns)
    op.create_table(
        "audit_usage_hourly",
        sa.Column("hour", TZ, nullable=False),
        sa.Column("tenant", SHORT, nullable=False),
        sa.Column("team", SHORT, nullable=False),
        sa.Column("provider", SHORT, nullable=False),
        sa.Column("model", SHORT, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("results", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("hour", "tenant", "team", "provider", "model",
                                name="pk_audit_usage_hourly"),
    )
    hour = _HOUR[op.get_bind().dialect.name]
    op.execute(_ROLLUP.format(hour=hour))
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(300), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_row_hash", sa.String(64), nullable=False),
        sa.Column("made_at", TZ, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
    )
    op.create_index("ix_audit_checkpoints_chain_last_seq", "audit_checkpoints",
                    ["chain", "last_seq"])


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_usage_hourly")
    for name in NEW_INDEXES:
        op.drop_index(name, "audit_events")
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, "audit_events", columns)
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("req_data_class")
        batch.drop_column("req_user")
        batch.drop_column("req_team")
