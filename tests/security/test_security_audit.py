"""An audit that cannot be emptied, through a real broker and the whole stack (router →
worker → simulator → aggregator, audited into SQLite):

* the ``ce_id`` trick — junk records on the requests topic carrying the ``ce_id`` of the
  request's task, result and response (bare and tenant-scoped forms), sent before the real
  request — leaves the lineage complete: every real step stored and genuine, the junk stored
  as flagged rows;
* a policy's reply topic (``replies.*``) is audited; an unsigned response there is stored,
  flagged ``unauthenticated`` and kept out of the lineage;
* ``modelbus audit verify --against-broker`` passes once an audit of its own (fresh consumer
  group and store, so it reads the session broker's whole history) has caught up, and fails
  naming topic, partition, offset and request id when one audit row is deleted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from modelbus_audit.lineage import build_lineage
from modelbus_audit.store import AuditStore
from modelbus_runtime.signing import KeyRing, Signer
from modelbus_schemas import ResponseEvent, encode
from modelbus_schemas.identity import scoped_id
from sqlalchemy.engine import make_url

from tests.upstream import REQUESTS, RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e


def _modelbus(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelbus_cli.main", "audit", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd, check=False)


async def _complete_lineage(url: str, rid: str, timeout: float = 60.0):
    store = await AuditStore.open(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            lineage = build_lineage(rid, await store.lineage(rid, tenant="acme"))
            whole = (lineage.request is not None and lineage.responses and lineage.parts
                     and all(p.tasks and p.results for p in lineage.parts))
            if whole or time.monotonic() > deadline:
                return lineage
            await asyncio.sleep(0.25)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def tricked_request(sqlite_stack) -> tuple[str, list[str]]:
    """Junk with the real events' ce_ids first, then the real request, answered."""
    rid = f"trick-{uuid.uuid4().hex[:8]}"
    scope = scoped_id("acme", rid)
    ce_ids = [f"{prefix}{suffix}" for prefix in (rid, scope)
              for suffix in (":task:0", ":result:0", ":response")]

    async def run() -> None:
        async with Upstream(sqlite_stack.bootstrap) as upstream:
            responses = await upstream.tail(RESPONSES)
            for ce_id in ce_ids:
                await upstream.producer.send_and_wait(
                    REQUESTS, json.dumps({"request_id": rid, "junk": True}).encode(),
                    key=rid.encode(),
                    headers=[("ce_id", ce_id.encode()), ("ce_type", b"io.modelbus.task.v1")])
            await upstream.send(request_json(rid))
            got = await responses.collect(lambda r: r.key == rid.encode(), 1, timeout=60)
            await responses.stop()
        assert got and json.loads(got[0].value)["status"] == "ok"

    asyncio.run(run())
    return rid, ce_ids


def test_ce_id_trick_leaves_the_lineage_complete(sqlite_stack, tricked_request):
    rid, ce_ids = tricked_request
    lineage = asyncio.run(_complete_lineage(sqlite_stack.database_url, rid))
    assert lineage.request is not None and lineage.request.topic == REQUESTS
    assert lineage.parts and all(p.tasks and p.results for p in lineage.parts)
    assert [r.status for r in lineage.responses] == ["ok"]
    assert all(e.genuine for e in [lineage.request, *lineage.responses])
    junk = [e for e in lineage.flagged if e.topic == REQUESTS]
    assert sorted(e.ce_id for e in junk) == sorted(ce_ids)
    assert all(e.flags == "undecoded" for e in junk)
    # internal steps were signed by the roles allowed to write them
    assert {t.signed_by for p in lineage.parts for t in p.tasks} <= {"router", "aggregator"}
    assert {r.signed_by for p in lineage.parts for r in p.results} == {"adapter-worker"}


@pytest.mark.timeout(900)
def test_verify_against_broker_names_a_deleted_row(sqlite_stack, tricked_request, tmp_path,
                                                   audit_process):
    rid, _ = tricked_request
    url = f"sqlite+aiosqlite:///{tmp_path / 'own-audit.db'}"
    audit_process(url)  # the stack's audit shares its group with earlier stacks' audits
    db = ["--database-url", url]
    against = ["--against-broker", "--bootstrap", sqlite_stack.bootstrap]
    asyncio.run(_complete_lineage(url, rid, timeout=300))
    deadline = time.monotonic() + 300
    while True:  # the audit may still be storing records of earlier tests
        ok = _modelbus("verify", *db, *against, cwd=tmp_path)
        if ok.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "against the broker OK" in ok.stdout and "0 missing" in ok.stdout
    assert "partitions at their end" in ok.stderr  # progress on stderr

    path = make_url(url).database
    with sqlite3.connect(path, timeout=30) as connection:
        topic, partition, offset = connection.execute(
            "SELECT topic, kafka_partition, kafka_offset FROM audit_events "
            "WHERE request_id = ? AND kind = 'response'", (rid,)).fetchone()
        connection.execute("DELETE FROM audit_events WHERE topic = ? AND kafka_partition = ? "
                           "AND kafka_offset = ?", (topic, partition, offset))
    failed = _modelbus("verify", *db, *against, cwd=tmp_path)
    assert failed.returncode == 1
    assert f"missing: {topic}[{partition}]@{offset}  request_id={rid}" in failed.stdout
    assert "against the broker MISSING RECORDS" in failed.stdout
    assert "1 missing from the store" in failed.stdout


def test_reply_topics_are_audited_and_unsigned_replies_flagged(sqlite_stack):
    """A policy's reply topic (``replies.*``) is audited: a response the aggregator signed is
    a genuine step; an unsigned copy with other text is stored, flagged, kept out."""
    rid = f"reply-{uuid.uuid4().hex[:8]}"
    topic = f"replies.acme.{uuid.uuid4().hex[:6]}"
    ring = KeyRing.parse(os.environ["MODELBUS_SIGNING_KEYS"])

    def response(text: str) -> bytes:
        return encode(ResponseEvent(
            event_id=ResponseEvent.make_id(scoped_id("acme", rid)), request_id=rid,
            tenant="acme", status="ok", output=text, created_at=datetime.now(UTC)))

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=sqlite_stack.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        forged, real = response("forged"), response("the real answer")
        async with Upstream(sqlite_stack.bootstrap) as upstream:
            await upstream.producer.send_and_wait(topic, forged, key=rid.encode())
            signature = Signer(ring, "aggregator").header(topic, rid.encode(), real, None, None)
            await upstream.producer.send_and_wait(topic, real, key=rid.encode(),
                                                  headers=[signature])
        store = await AuditStore.open(sqlite_stack.database_url)
        try:
            for _ in range(240):
                events = await store.lineage(rid, tenant="acme")
                if len(events) == 2:
                    return events
                await asyncio.sleep(0.25)
            raise AssertionError(f"{topic} was not audited: {events}")
        finally:
            await store.close()

    events = asyncio.run(run())
    lineage = build_lineage(rid, events)
    assert [(e.topic, e.payload["output"], e.signed_by) for e in lineage.responses] == [
        (topic, "the real answer", "aggregator")]
    assert [(e.flags, e.payload["output"]) for e in lineage.flagged] == [
        ("unauthenticated", "forged")]
