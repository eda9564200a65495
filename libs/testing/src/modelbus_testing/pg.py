"""A fresh, uniquely named PostgreSQL database for a test session, dropped afterwards.

The server is ``DATABASE_URL``'s when set, else the machine's at 127.0.0.1:5432 (user
``postgres``, trust auth). Yields an async SQLAlchemy URL (``postgresql+asyncpg://``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL", DEFAULT_SERVER)
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    return urlunsplit(parts._replace(path="/postgres"))


@contextmanager
def temporary_postgres_database(prefix: str = "modelbus_test") -> Iterator[str]:
    server = _server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    async_url = urlunsplit(parts._replace(scheme="postgresql+asyncpg", path=f"/{name}"))
    try:
        yield async_url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
