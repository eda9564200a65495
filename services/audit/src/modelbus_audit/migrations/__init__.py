"""Alembic migrations of the audit store (``env.py``, ``versions/``); run by ``db.migrate``."""
