"""Alembic environment of the audit store.

Programmatic use (the normal path): ``modelbus_audit.db.migrate`` passes an open connection in
``config.attributes["connection"]`` and owns the transaction. Command-line use
(``alembic -x url=... upgrade head`` with ``script_location`` pointing here) builds an async
engine from ``-x url=``, ``sqlalchemy.url`` or ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from modelbus_audit.db import VERSION_TABLE, create_engine, database_url_from_env
from modelbus_audit.tables import metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, version_table=VERSION_TABLE, **kwargs)


def _run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or database_url_from_env()
    )


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run_on(config.attributes["connection"])
else:
    asyncio.run(_run_async())
