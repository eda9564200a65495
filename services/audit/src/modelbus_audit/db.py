"""Where the audit store lives and how to connect to it: URL resolution, engine, migrations.

One code path for both back ends: PostgreSQL through ``postgresql+asyncpg`` (production) and
SQLite through ``sqlite+aiosqlite`` (the embedded default). Alembic migrations run through
``AsyncConnection.run_sync``; on PostgreSQL an advisory lock makes concurrent starts of several
audit consumers safe (one migrates, the others wait, then find the schema at head).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "audit_alembic_version"
DEFAULT_SQLITE_PATH = ".modelbus/audit.db"
_MIGRATION_LOCK_KEY = 0x6D6F_6475_6974  # arbitrary, constant: "modeluit"
_PG_SCHEMES = ("postgresql", "postgres")
SQLITE_BEGIN_OPTION = "modelbus_sqlite_begin"


def database_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL`` (rewritten to its async driver), else the SQLite file at
    ``$MODELBUS_AUDIT_SQLITE_PATH`` or ``.modelbus/audit.db`` (its folder is created)."""
    env = os.environ if env is None else env
    url = env.get("DATABASE_URL", "").strip()
    if url:
        return async_url(url)
    path = Path(env.get("MODELBUS_AUDIT_SQLITE_PATH") or DEFAULT_SQLITE_PATH).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path.resolve()}"


def async_url(url: str) -> str:
    """Rewrite ``postgres://``, ``postgresql[+driver]://`` and ``sqlite[+driver]://`` URLs to
    the async drivers; ``sslmode`` (libpq) becomes asyncpg's ``ssl``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("database URL must look like scheme://...")
    base = scheme.split("+", 1)[0].lower()
    if base in _PG_SCHEMES:
        parsed = make_url("postgresql+asyncpg://" + rest)
        query = dict(parsed.query)
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        return parsed.set(query=query).render_as_string(hide_password=False)
    if base == "sqlite":
        return "sqlite+aiosqlite://" + rest
    raise ValueError(f"unsupported database URL scheme {scheme!r} (use postgresql or sqlite)")


def redacted(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparseable database URL>"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (any accepted form); SQLite files get WAL and a busy timeout."""
    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            return _sqlite_engine(url, poolclass=StaticPool)
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url)
    return create_async_engine(
        url,
        json_serializer=stored_json,
        pool_pre_ping=True,
        connect_args={"timeout": 10, "command_timeout": 60},
    )


def stored_json(value: object) -> str:
    """The text a JSON column stores: orjson's (several times faster than ``json.dumps``; it
    reads back to equal values), else ``json.dumps``'s for what orjson refuses (integers
    beyond 64 bits, lone surrogates). Non-finite numbers never get here: the row hash, taken
    first, refuses them."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def _sqlite_engine(url: str, **kwargs: object) -> AsyncEngine:
    """SQLite with transactions SQLAlchemy controls (the driver's implicit BEGIN switched off):
    DDL is transactional, and writers can ask for ``BEGIN IMMEDIATE`` (see :func:`for_writing`)
    so two processes on one file queue for the write lock instead of failing on upgrade."""
    busy_ms = sqlite_busy_timeout_ms()
    engine = create_async_engine(url, connect_args={"timeout": busy_ms / 1000},
                                 json_serializer=stored_json, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def sqlite_busy_timeout_ms(env: Mapping[str, str] | None = None) -> int:
    """How long a SQLite writer waits for another's lock before the store counts as
    unavailable (``MODELBUS_AUDIT_SQLITE_BUSY_TIMEOUT_MS``, default 30 s)."""
    value = (os.environ if env is None else env).get("MODELBUS_AUDIT_SQLITE_BUSY_TIMEOUT_MS", "")
    return int(value) if value.strip().isdigit() else 30_000


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """The engine to write through: takes SQLite's write lock at BEGIN; same engine elsewhere."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    return engine


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def newest_script() -> str:
    """The revision of the newest script in ``migrations/versions`` (revision ids are the file
    names, numbered): what :func:`head_revision` says, without importing Alembic."""
    return max(p.stem for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the newest revision (a no-op when already there: checked with
    one query first, so a store at head never loads Alembic)."""
    if await _stored_revision(engine) == newest_script():
        return
    async with for_writing(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade)


async def _stored_revision(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            versions = list(result.scalars())
    except Exception:  # noqa: BLE001 - no version table yet (a new store): migrate
        return None
    return versions[0] if len(versions) == 1 else None


def _upgrade(connection: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(
                sync, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
        )
