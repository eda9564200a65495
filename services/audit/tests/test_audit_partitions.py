"""PostgreSQL day partitions (revision 0005, :mod:`modelbus_audit.partitions`): a store of
revision 0004 with rows is converted in place (rows, chains, ids and indexes kept; the keys
include the partition key), the revision runs back and forth, an event of a day without a
partition is stored (default partition) and moved into its day's partition by maintenance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from alembic import command
from modelbus_audit import db, partitions
from modelbus_audit.store import AuditStore
from sqlalchemy import text

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _to(revision: str, down: bool = False):
    def run(connection) -> None:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
    return run


async def _facts(store: AuditStore) -> dict:
    async with store.engine.connect() as connection:
        is_partitioned = await connection.run_sync(partitions.partitioned)
        days = await connection.run_sync(partitions.days) if is_partitioned else []
        keys = (await connection.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'audit_events'::regclass AND contype IN ('p', 'u')"))).all()
        indexes = (await connection.execute(text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events'"))).scalars()
        return {"partitioned": is_partitioned, "days": days, "keys": dict(keys),
                "indexes": set(indexes)}


async def test_a_store_with_rows_is_converted_to_day_partitions_and_back(
        postgres_url, empty_database, new_flow):
    async with empty_database(postgres_url) as url:
        store = await AuditStore.open(url, migrate=False)
        try:
            async with db.for_writing(store.engine).begin() as connection:
                await connection.run_sync(_to("0004_callers_rollup"))
            flows = [new_flow(f"p{n}-{uuid.uuid4().hex[:6]}", T0 + timedelta(days=n))
                     for n in range(3)]
            for flow in flows:
                await store.write(flow.records())
            before = await _facts(store)
            ids = sorted((await store.lineage(flows[1].request_id)), key=lambda e: e.id)

            await store.migrate()

            after = await _facts(store)
            assert not before["partitioned"] and after["partitioned"]
            assert {T0.date() + timedelta(days=n) for n in range(3)} <= set(after["days"])
            assert after["keys"]["pk_audit_events"] == "PRIMARY KEY (id, event_time)"
            assert after["keys"]["uq_audit_events_event_id_event_time"] == (
                "UNIQUE (event_id, event_time)")
            assert before["indexes"] - {"pk_audit_events", "uq_audit_events_event_id",
                                        "uq_audit_events_chain_chain_seq"} <= after["indexes"]
            assert await store.count() == 18
            moved = sorted((await store.lineage(flows[1].request_id)), key=lambda e: e.id)
            assert [e.id for e in moved] == [e.id for e in ids]
            report = await store.verify(full=True)
            assert report.ok and report.rows_checked == 18, report.describe()
            later = new_flow(f"later-{uuid.uuid4().hex[:6]}", T0 + timedelta(days=1))
            assert await store.write(later.records()) == 6  # ids continue from the sequence
            assert min(e.id for e in await store.lineage(later.request_id)) > ids[-1].id

            async with db.for_writing(store.engine).begin() as connection:
                await connection.run_sync(_to("0004_callers_rollup", down=True))
            back = await _facts(store)
            assert not back["partitioned"] and back["indexes"] == before["indexes"]
            assert await store.count() == 24
            await store.migrate()  # and forward again
            assert (await _facts(store))["partitioned"] and await store.count() == 24
            assert (await store.verify(full=True)).ok
        finally:
            await store.close()


async def test_an_event_of_a_day_without_partition_is_stored_then_moved(postgres_url,
                                                                        new_flow):
    store = await AuditStore.open(postgres_url)
    try:
        far = datetime(2031, 7, 4, 9, 0, tzinfo=UTC)  # clock skew: no partition that far ahead
        flow = new_flow(f"far-{uuid.uuid4().hex[:6]}", far)
        assert await store.write(flow.records()) == 6
        async with store.engine.connect() as connection:
            assert far.date() in await connection.run_sync(partitions.default_days)

        created = await partitions.maintain(store.engine, today=datetime.now(UTC).date())

        assert far.date() in created
        async with store.engine.connect() as connection:
            assert far.date() not in await connection.run_sync(partitions.default_days)
            held = await connection.execute(text(
                f"SELECT count(*) FROM {partitions.name_of(far.date())}"))
            assert held.scalar_one() == 6
        assert len(await store.lineage(flow.request_id)) == 6
        today = datetime.now(UTC).date()
        assert await partitions.maintain(store.engine, today=today) == []  # already there
        async with store.engine.connect() as connection:
            days = set(await connection.run_sync(partitions.days))
        assert {today + timedelta(days=n) for n in range(-1, partitions.AHEAD_DAYS + 1)} <= days
    finally:
        await store.close()
