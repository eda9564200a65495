"""AuditStore on SQLite and PostgreSQL: migrations, lineage order, idempotent writes, dead
letters, secrets, batches, concurrent writers on one chain, unreachable databases."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from modelbus_audit import db
from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore, AuditStoreUnavailable
from modelbus_audit.tables import audit_events, metadata
from modelbus_schemas import DlqReason
from sqlalchemy import inspect, select, text


async def test_migrations_reach_head_and_match_the_table_definitions(store):
    assert await db.current_revision(store.engine) == db.head_revision()
    opts = {  # compare only our tables: a shared database may hold other services' tables
        "version_table": db.VERSION_TABLE,
        "include_name": lambda name, kind, _: kind != "table" or name in metadata.tables,
    }
    async with store.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        diff = await connection.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts=opts), metadata)
        )
    assert {"audit_events", "audit_chain_heads", db.VERSION_TABLE} <= tables
    if store.engine.dialect.name == "postgresql":  # partitioned: unique keys end in event_time
        diff = [d for d in diff if not _partition_key(d)]
    assert diff == []
    await store.migrate()  # idempotent at head
    assert await db.current_revision(store.engine) == db.head_revision()


def _partition_key(change) -> bool:
    """One of the unique keys of ``audit_events`` that differ on PostgreSQL by its partition
    key (revision 0005): (event_id[, event_time]) and (chain, chain_seq[, event_time])."""
    kind, constraint = change[0], change[1]
    if kind not in ("add_constraint", "remove_constraint"):
        return False
    columns = [c.name for c in constraint.columns]
    return constraint.table.name == "audit_events" and columns in (
        ["event_id"], ["chain", "chain_seq"], ["event_id", "event_time"],
        ["chain", "chain_seq", "event_time"])


async def test_lineage_is_ordered_by_time_then_kind(store, flow):
    records = flow.records()
    random.Random(7).shuffle(records)
    assert await store.write(records) == 6
    lineage = await store.lineage(flow.request_id)
    assert [e.kind for e in lineage] == ["request", "task", "task", "result", "result", "response"]
    # the last result and the response share an event time: kind order decides
    assert lineage[4].event_time == lineage[5].event_time
    assert [e.part_id for e in lineage if e.kind == "task"] == [0, 1]
    assert lineage[0].tenant == "acme" and lineage[1].policy_version == "v7"
    assert lineage[3].payload["attempts"][0]["status_code"] == 429
    assert await store.lineage("no-such-request") == []


async def test_writing_the_same_batch_twice_inserts_nothing_new(store, flow):
    records = flow.records()
    assert await store.write(records) == 6
    assert await store.write(records) == 0
    assert await store.write(records + records) == 0
    assert await store.count() == 6
    other = AuditRecord.from_message(  # a redelivery re-parsed from the same bytes
        flow.response.topic, 0, flow.response.offset, flow.response.key, flow.response.value,
        flow.response.headers, flow.response.timestamp_ms,
    )
    assert await store.write([other]) == 0
    assert (await store.verify()).ok


async def test_duplicates_inside_one_batch_are_written_once(store, new_flow):
    first, second = new_flow("req-a"), new_flow("req-b")
    batch = first.records() + first.records()[:2] + second.records()
    assert await store.write(batch) == 12
    assert await store.write(second.records() + first.records()[3:]) == 0
    assert await store.count() == 12


async def test_dead_letter_is_stored_with_reason_and_safe_excerpt(store, flow, dead_letter_factory):
    body = b"\x00\x1b[31mnot json" + bytes(range(256)) * 4096  # ~1 MB, terminal escapes
    message, info = dead_letter_factory(flow.request, body=body, reason=DlqReason.SCHEMA)
    assert await store.write([flow.request.record(), message.record()]) == 2
    assert await store.write([message.record()]) == 0  # DLQ redelivery: same dlq id
    events = await store.lineage(flow.request_id)
    assert [e.kind for e in events] == ["request", "dead_letter"]
    dead = events[1]
    assert dead.event_id == info.event_id()
    assert dead.ce_id == flow.request_id and dead.event_id != dead.ce_id
    assert (dead.dlq_reason, dead.dlq_source_topic) == ("schema", flow.request.topic)
    assert dead.payload is None and dead.body_size == len(body)
    assert dead.body_excerpt.startswith("\\x00\\x1b[31mnot json")
    assert len(dead.body_excerpt) < 1200
    async with store.engine.connect() as connection:
        row = (await connection.execute(select(audit_events).where(
            audit_events.c.id == dead.id))).mappings().one()
    assert len(json.dumps(dict(row), default=str)) < 10_000


async def test_secret_headers_never_reach_the_database(store, flow):
    secret_headers = [("Authorization", b"Bearer sk-live-XYZ"), ("X-Api-Key", b"key-ABC"),
                      ("refresh_token", b"tok-123"), ("Set-Cookie", b"sid=QWE")]
    message = flow.request
    record = AuditRecord.from_message(message.topic, 0, message.offset, message.key,
                                      message.value, message.headers + secret_headers, 0)
    await store.write([record])
    async with store.engine.connect() as connection:
        stored = (await connection.execute(text(
            "SELECT headers, payload FROM audit_events"))).one()
    dumped = json.dumps([stored[0], stored[1]], default=str) if not isinstance(
        stored[0], str) else stored[0] + str(stored[1])
    for name, value in secret_headers:
        assert name.lower() not in dumped.lower()
        assert value.decode() not in dumped
    assert "sk-should-not-be-stored" not in dumped  # the payload's metadata.api_key
    assert "ce_id" in dumped


async def test_a_batch_of_hundreds_is_one_write(store, new_flow):
    records = [r for i in range(100) for r in new_flow(f"bulk-{i}").records()]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await store.write(records) == 600
    elapsed = loop.time() - started
    assert elapsed < 20, f"600-row batch took {elapsed:.1f}s"
    report = await store.verify()
    assert report.ok and report.rows_checked == 600
    lineage = await store.lineage("bulk-42")
    assert len(lineage) == 6 and lineage[0].kind == "request"


async def test_two_writers_on_one_chain_keep_it_linear(store_url, store, new_flow):
    """Two stores (as two processes would be) write different events to the same chains."""
    other = await AuditStore.open(store_url)
    try:
        flows = [new_flow(f"race-{i}") for i in range(20)]
        batches = [[r for f in flows[i::4] for r in f.records()] for i in range(4)]
        results = await asyncio.gather(
            store.write(batches[0]), other.write(batches[1]),
            store.write(batches[2]), other.write(batches[3]),
        )
    finally:
        await other.close()
    assert sum(results) == 120
    report = await store.verify()
    assert report.ok, report.describe()
    assert report.rows_checked == 120


async def test_unreachable_postgres_raises_unavailable_on_write(flow):
    store = await AuditStore.open("postgresql://postgres@127.0.0.1:1/nothing", migrate=False)
    try:
        with pytest.raises(AuditStoreUnavailable, match="unavailable during write"):
            await store.write(flow.records())
    finally:
        await store.close()


async def test_unreachable_database_raises_unavailable_on_open(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(AuditStoreUnavailable):
        await AuditStore.open(f"sqlite:///{blocker}/sub/audit.db")
    with pytest.raises(AuditStoreUnavailable, match="127.0.0.1:1"):
        await AuditStore.open("postgresql://postgres:hunter2@127.0.0.1:1/nothing")


async def test_unavailable_message_hides_the_password():
    with pytest.raises(AuditStoreUnavailable) as caught:
        await AuditStore.open("postgresql://postgres:hunter2@127.0.0.1:1/nothing")
    assert "hunter2" not in str(caught.value)
