"""Where claim-checked parts live: a blob store keyed by (tenant, sha256).

A blob is the JSON of one content part, stored once: putting the same bytes again for the
same tenant writes nothing new (it only refreshes the time retention counts from). A blob is
found by the tenant of the request reading it and the hash on its reference, never by the
reference text alone, so a reference copied into another tenant's request resolves to
nothing. The key is :func:`~modelbus_schemas.identity.scoped_id` of (tenant, sha256).

Back ends, chosen by :func:`open_blob_store` from a URL:

* ``postgresql://…`` — a ``modelbus_blobs`` table, created on first use (production default,
  ``MODELBUS_BLOB_URL`` else ``DATABASE_URL``);
* ``sqlite:///path`` — the same table in a SQLite file: the local default for ``make run``
  when no database is configured (``.modelbus/blobs.db``), shared by every local process;
* ``s3://bucket/prefix`` — an S3-compatible object store (``MODELBUS_BLOB_S3_ENDPOINT_URL``
  for MinIO, Ceph or a test server; credentials from the usual AWS environment). Retention
  there is by listing and last-modified time (a bucket lifecycle rule does the same job).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from modelbus_schemas.identity import scoped_id
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_SQLITE_PATH = ".modelbus/blobs.db"
_CREATE_LOCK_KEY = 0x626C_6F62_7331  # arbitrary, constant: "blobs1"

_metadata = MetaData()
blobs = Table(
    "modelbus_blobs",
    _metadata,
    Column("blob_id", String(400), primary_key=True),  # scoped_id(tenant, sha256)
    Column("tenant", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False, index=True),
)


class BlobStore(Protocol):
    kind: str

    async def put(self, tenant: str, sha256: str, data: bytes) -> None: ...

    async def get(self, tenant: str, sha256: str) -> bytes | None: ...

    async def delete_older_than(self, cutoff: datetime) -> int: ...

    async def close(self) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class SqlBlobStore:
    """PostgreSQL (asyncpg) or SQLite (aiosqlite) through one SQLAlchemy Core path."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.kind = "pg" if engine.dialect.name == "postgresql" else "sqlite"
        self._ready = False
        self._lock = asyncio.Lock()

    async def _ensure_table(self) -> None:
        """Create the table on first use. Processes starting together (router replicas,
        workers) take turns on PostgreSQL under an advisory lock; on SQLite the loser of a
        race finds the table on its second look."""
        if self._ready:
            return
        async with self._lock:
            for attempt in range(2):
                if self._ready:
                    break
                try:
                    async with self.engine.begin() as conn:
                        if self.kind == "pg":
                            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                               {"key": _CREATE_LOCK_KEY})
                        await conn.run_sync(_metadata.create_all, checkfirst=True)
                    self._ready = True
                except DBAPIError:
                    if attempt:
                        raise

    def _insert(self):
        if self.kind == "pg":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(blobs)

    async def put(self, tenant: str, sha256: str, data: bytes) -> None:
        await self._ensure_table()
        stmt = self._insert().values(blob_id=scoped_id(tenant, sha256), tenant=tenant,
                                     sha256=sha256, data=data, stored_at=_now())
        stmt = stmt.on_conflict_do_update(index_elements=[blobs.c.blob_id],
                                          set_={"stored_at": stmt.excluded.stored_at})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def get(self, tenant: str, sha256: str) -> bytes | None:
        await self._ensure_table()
        query = select(blobs.c.data).where(blobs.c.blob_id == scoped_id(tenant, sha256))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else bytes(row[0])

    async def delete_older_than(self, cutoff: datetime) -> int:
        await self._ensure_table()
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(blobs).where(blobs.c.stored_at < cutoff))
        return result.rowcount or 0

    async def close(self) -> None:
        await self.engine.dispose()


class S3BlobStore:
    """An S3-compatible bucket; boto3's blocking calls run in worker threads."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, client=None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url,
                                             region_name=region or "us-east-1")

    def key(self, tenant: str, sha256: str) -> str:
        name = quote(scoped_id(tenant, sha256), safe="")
        return f"{self.prefix}/{name}" if self.prefix else name

    async def _call(self, method: str, **kwargs):
        return await asyncio.to_thread(functools.partial(getattr(self.client, method), **kwargs))

    async def put(self, tenant: str, sha256: str, data: bytes) -> None:
        # Same key, same bytes: a re-put rewrites identical content and restarts retention.
        await self._call("put_object", Bucket=self.bucket, Key=self.key(tenant, sha256),
                         Body=data, ContentType="application/json")

    async def get(self, tenant: str, sha256: str) -> bytes | None:
        try:
            answer = await self._call("get_object", Bucket=self.bucket,
                                      Key=self.key(tenant, sha256))
        except self.client.exceptions.NoSuchKey:
            return None
        return await asyncio.to_thread(answer["Body"].read)

    async def delete_older_than(self, cutoff: datetime) -> int:
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        pages = await asyncio.to_thread(
            lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        for page in pages:
            old = [{"Key": o["Key"]} for o in page.get("Contents", [])
                   if o["LastModified"] < cutoff]
            for start in range(0, len(old), 1000):
                await self._call("delete_objects", Bucket=self.bucket,
                                 Delete={"Objects": old[start:start + 1000], "Quiet": True})
            deleted += len(old)
        return deleted

    async def close(self) -> None:
        return None


def sql_async_url(url: str) -> str:
    """``postgres[ql][+driver]://`` and ``sqlite[+driver]://`` rewritten to asyncpg/aiosqlite."""
    scheme, _, rest = url.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if base in ("postgres", "postgresql"):
        return "postgresql+asyncpg://" + rest
    if base == "sqlite":
        return "sqlite+aiosqlite://" + rest
    raise ValueError(f"unsupported blob store URL scheme {scheme!r} "
                     "(use postgresql://, sqlite:/// or s3://)")


def _sqlite_wal(dbapi_connection, _record) -> None:
    """Readers in other processes do not block a writer (and the reverse)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None,
                    s3_region: str | None = None) -> BlobStore:
    """The store a URL names (see the module docstring)."""
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError("an s3:// blob URL names its bucket: s3://bucket[/prefix]")
        return S3BlobStore(parts.netloc, unquote(parts.path), endpoint_url=s3_endpoint_url,
                           region=s3_region)
    async_url = sql_async_url(url)
    parsed = make_url(async_url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ValueError("the blob store must be shared by processes: use a SQLite file")
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_wal)
        return SqlBlobStore(engine)
    return SqlBlobStore(create_async_engine(async_url, pool_pre_ping=True,
                                            connect_args={"timeout": 10}))
