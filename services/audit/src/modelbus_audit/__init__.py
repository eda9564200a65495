"""modelbus_audit: the audit service — every topic's messages, DLQs included, stored as
tamper-evident lineage rows (PostgreSQL in production, SQLite embedded), with lineage queries,
chain verification and the ``modelbus audit`` commands. ``app.py`` wires it to Kafka."""

from modelbus_audit.db import database_url_from_env
from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore, AuditStoreError, AuditStoreUnavailable
from modelbus_audit.verify import VerifyReport

__all__ = [
    "AuditRecord", "AuditStore", "AuditStoreError", "AuditStoreUnavailable", "VerifyReport",
    "database_url_from_env",
]
