"""Backup and restore of the audit store on the local PostgreSQL, the way docs/backup.md says.

An audit database is filled through the audit's own ingestion code (``AuditRecord`` from
contract events as the consumer receives them, ``AuditStore.write``); the backup CronJob's own
script (k8s/base/data/postgres-backup.yaml) dumps it; ``pg_restore`` loads the dump into a new
database; ``modelbus audit verify`` passes on the copy, which holds every row, and fails on a
copy with one row edited.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore
from modelbus_schemas import Caller, ChatMessage, RequestEvent, ResponseEvent, encode
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import REQUESTS, RESPONSES, dlq_topic
from modelbus_testing.pg import temporary_postgres_database
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[2]
CRONJOB = REPO / "k8s/base/data/postgres-backup.yaml"
REQUESTS_STORED = 40


def libpq_url(async_url: str) -> str:
    """The URL pg_dump/pg_restore/psql take (libpq), from the store's SQLAlchemy URL."""
    return async_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def backup_script() -> str:
    (cronjob,) = [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d and d["kind"] == "CronJob"]
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    return container["args"][0]


def records(run: str) -> list[AuditRecord]:
    """What the audit consumer receives for ``REQUESTS_STORED`` answered requests of two
    tenants, plus one dead-lettered request: contract events with their CloudEvents headers."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    out: list[AuditRecord] = []
    offset = 0
    for n in range(REQUESTS_STORED):
        tenant, rid = ("acme", "globex")[n % 2], f"backup-{run}-{n}"
        at = start + timedelta(seconds=n)
        request = RequestEvent(request_id=rid, task="summarize",
                               messages=[ChatMessage(role="user", content=f"text {n}")],
                               caller=Caller(tenant=tenant, team="support", user="ana"))
        response = ResponseEvent(event_id=ResponseEvent.make_id(scoped_id(tenant, rid)),
                                 request_id=rid, tenant=tenant, task="summarize", status="ok",
                                 output=f"summary {n}", models=["openai/gpt-4o-mini"],
                                 cost_usd=0.0001 * n, policy_version="v1", created_at=at)
        for event, topic in ((request, REQUESTS), (response, RESPONSES)):
            event_id = event.event_id() if callable(event.event_id) else event.event_id
            headers = ce.ce_headers(event_id=event_id, ce_type=type(event).CE_TYPE,
                                    source="tests", time=at)
            offset += 1
            out.append(AuditRecord.from_message(topic, n % 3, offset, rid.encode(), encode(event),
                                                headers, int(at.timestamp() * 1000)))
    out.append(AuditRecord.from_message(dlq_topic(REQUESTS), 0, 1, b"poison", b"not json", [],
                                        int(start.timestamp() * 1000)))
    return out


async def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True,
                                   timeout=300, check=False, **kw)


async def modelbus_verify(database_url: str) -> subprocess.CompletedProcess:
    cli = shutil.which("modelbus", path=str(Path(sys.executable).parent)) or "modelbus"
    return await run([cli, "audit", "verify", "--database-url", database_url])


@pytest.fixture
def source_database():
    with temporary_postgres_database("modelbus_backup_src") as url:
        yield url


@pytest.fixture
def restored_database():
    with temporary_postgres_database("modelbus_backup_copy") as url:
        yield url


async def _count(url: str) -> int:
    store = await AuditStore.open(url)
    try:
        return await store.count()
    finally:
        await store.close()


async def test_dump_restore_and_verify_the_copy(source_database, restored_database, tmp_path):
    store = await AuditStore.open(source_database)
    try:
        written = await store.write(records(uuid.uuid4().hex[:6]))
        stored = await store.count()
        assert (await store.verify()).ok
    finally:
        await store.close()
    assert written == stored == 2 * REQUESTS_STORED + 1

    # The CronJob's script, with its volume at a temporary directory.
    backups = tmp_path / "backups"
    backups.mkdir()
    script = backup_script().replace("/backups", str(backups))
    # the URL as the audit has it (postgresql+asyncpg://): the script takes either form
    env = {**os.environ, "DATABASE_URL": source_database, "KEEP_DAYS": "14"}
    job = await run(["sh", "-c", script], env=env)
    assert job.returncode == 0, job.stderr
    (dump,) = backups.glob("modelbus_audit-*.dump")
    assert not list(backups.glob("*.partial")), "a finished run leaves no partial file"
    digest, name = (backups / f"{dump.name}.sha256").read_text().split()
    assert name == dump.name and digest == hashlib.sha256(dump.read_bytes()).hexdigest()

    # docs/backup.md, step 2: pg_restore into a new database.
    restore = await run(["pg_restore", "--no-owner", "--exit-on-error",
                         f"--dbname={libpq_url(restored_database)}", str(dump)])
    assert restore.returncode == 0, restore.stderr

    # Step 3: the copy verifies and holds every row.
    verified = await modelbus_verify(restored_database)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert await _count(restored_database) == stored

    # A copy with one edited row does not verify.
    copy = await AuditStore.open(restored_database)
    try:
        async with copy.engine.begin() as connection:
            changed = await connection.execute(text(
                "UPDATE audit_events SET cost_usd = cost_usd + 1 WHERE id = "
                "(SELECT id FROM audit_events WHERE topic = :topic ORDER BY id DESC LIMIT 1)"),
                {"topic": RESPONSES})
            assert changed.rowcount == 1
    finally:
        await copy.close()
    tampered = await modelbus_verify(restored_database)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
