"""Store outage under load, through a real broker and a real audit process, on both stores:
the consumer stops writing and committing while the store is unreachable, then catches up with
every event stored exactly once and the hash chains intact.

PostgreSQL: a TCP proxy between the audit process and the server is cut for some seconds.
SQLite: another connection holds the write lock for some seconds (the service's busy timeout
is short, so writes fail as they would on a dead server, instead of waiting).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from modelbus_audit.store import AuditStore
from modelbus_audit.tables import audit_events
from modelbus_schemas.identity import scoped_id
from modelbus_testing.tcp_proxy import TcpProxy
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.upstream import Upstream, request_json

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

EVENTS = 1200
OUTAGE_S = 5.0


async def _stored(store: AuditStore, prefix: str) -> list[str]:
    query = select(audit_events.c.event_id).where(audit_events.c.request_id.like(prefix + "%"))
    async with store.engine.connect() as connection:
        return list((await connection.execute(query)).scalars())


@asynccontextmanager
async def _pg_outage(postgres_url):
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    async def outage(seconds: float, during: Callable[[], Awaitable[None]]) -> None:
        proxy.cut()
        try:
            await during()
            await asyncio.sleep(seconds)
        finally:
            proxy.restore()

    try:
        yield proxied, {}, outage
    finally:
        proxy.close()


@asynccontextmanager
async def _sqlite_outage(tmp_path):
    path = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def outage(seconds: float, during: Callable[[], Awaitable[None]]) -> None:
        locker = sqlite3.connect(path, isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            await during()
            await asyncio.sleep(seconds)
        finally:
            locker.execute("ROLLBACK")
            locker.close()

    yield url, {"MODELBUS_AUDIT_SQLITE_BUSY_TIMEOUT_MS": "200"}, outage


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_store_outage_under_load_loses_and_duplicates_nothing(
    kind, request, tmp_path, kafka_bootstrap, audit_process
):
    if kind == "postgresql":
        context = _pg_outage(request.getfixturevalue("postgres_url"))
    else:
        context = _sqlite_outage(tmp_path)
    prefix = f"outage-{uuid.uuid4().hex[:8]}-"
    ids = [f"{prefix}{i}" for i in range(EVENTS)]
    async with context as (service_url, env, outage):
        direct_url = service_url if kind == "sqlite" else request.getfixturevalue("postgres_url")
        service = audit_process(service_url, **env)
        store = await AuditStore.open(direct_url)
        try:
            async with Upstream(kafka_bootstrap) as upstream:

                async def produce(batch: list[str]) -> None:
                    for rid in batch:
                        await upstream.send(request_json(rid, text=f"outage {rid}"))
                        await asyncio.sleep(0.002)

                await produce(ids[:300])
                for _ in range(200):  # the service is writing before the outage starts
                    if len(await _stored(store, prefix)) >= 100:
                        break
                    await asyncio.sleep(0.1)
                counts: list[int] = []

                async def during() -> None:
                    await produce(ids[300:900])  # load keeps coming while the store is down
                    await asyncio.sleep(1.0)
                    counts.append(len(await _stored(store, prefix)))

                await outage(OUTAGE_S, during)
                counts.append(len(await _stored(store, prefix)))  # just after restore
                await produce(ids[900:])

            stored: list[str] = []
            for _ in range(600):
                stored = await _stored(store, prefix)
                if len(stored) >= EVENTS:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything duplicated would arrive by now
            stored = await _stored(store, prefix)
            report = await store.verify()
        finally:
            await store.close()

    assert counts[0] < EVENTS, "the outage happened while events were still arriving"
    assert counts[1] <= counts[0] + 300, "nothing new was written while the store was down"
    identities = [f"request:{scoped_id('acme', rid)}" for rid in ids]  # tenant + request id
    assert sorted(stored) == sorted(identities), "every event stored exactly once"
    assert report.ok, report.describe()
    assert "dependency unavailable, retrying in place" in service.log()
