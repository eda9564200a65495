"""modelbus_audit: the audit service — every topic's messages, DLQs included, stored as
tamper-evident lineage rows (PostgreSQL in production, SQLite embedded), with lineage queries,
chain verification and the ``modelbus audit`` commands. ``app.py`` wires it to Kafka.

The names below load on first use, so ``modelbus audit show`` imports only what it reads with.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "AuditRecord": "modelbus_audit.record",
    "AuditStore": "modelbus_audit.store",
    "AuditStoreError": "modelbus_audit.store",
    "AuditStoreUnavailable": "modelbus_audit.store",
    "VerifyReport": "modelbus_audit.verify",
    "database_url_from_env": "modelbus_audit.db",
}
__all__ = ["AuditRecord", "AuditStore", "AuditStoreError", "AuditStoreUnavailable",
           "VerifyReport", "database_url_from_env"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'modelbus_audit' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
