"""Revisions 0003 and 0004 on a store that already holds rows (SQLite and PostgreSQL): rows
written by revision 0002 (no identity, hashed without the new columns) still verify after the
upgrade, chains continue across it, a redelivery of an event stored before it is not stored
again, and 0004 backfills the request's caller onto every row and the usage rollup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from modelbus_audit import db
from modelbus_audit.chain import GENESIS, seal
from modelbus_audit.store import AuditStore
from modelbus_audit.tables import REV3_COLUMNS, audit_chain_heads, audit_events
from sqlalchemy import insert, text


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path) -> str:
    """A SQLite file URL, or the PostgreSQL server to create a fresh database on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_url")


async def _store_as_revision_0002(url: str, records) -> None:
    """Migrate to 0002 and write ``records`` the way the 0002 code did (event_id = ce_id)."""
    engine = db.create_engine(db.async_url(url))

    def upgrade(connection) -> None:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0002_privacy_usage")

    try:
        async with db.for_writing(engine).begin() as connection:
            await connection.run_sync(upgrade)
            heads: dict[str, tuple[int, str]] = {}
            now = datetime.now(UTC)
            for record in records:
                seq, prev = heads.get(record.chain, (0, GENESIS))
                row = {k: v for k, v in record.to_row().items() if k not in REV3_COLUMNS}
                row.update(event_id=record.ce_id, chain=record.chain, chain_seq=seq + 1,
                           stored_at=now)
                heads[record.chain] = (seq + 1, seal(row, prev))
                await connection.execute(insert(audit_events).values(**row))
            for chain, (seq, last) in heads.items():
                await connection.execute(insert(audit_chain_heads).values(
                    chain=chain, last_seq=seq, last_row_hash=last, updated_at=now))
    finally:
        await engine.dispose()


async def test_rows_of_revision_0002_verify_after_the_upgrade(server, new_flow, empty_database):
    async with empty_database(server) as url:
        await _check_upgrade(url, new_flow)


async def _check_upgrade(empty_url: str, new_flow) -> None:
    before = new_flow(f"old-{uuid.uuid4().hex[:6]}")
    await _store_as_revision_0002(empty_url, before.records())
    store = await AuditStore.open(empty_url)  # migrates to head
    try:
        assert await db.current_revision(store.engine) == db.head_revision()
        assert (await store.verify()).ok
        await _check_backfill(store, before)
        await store.write(before.records())  # redelivered after the upgrade: not stored again
        assert await store.count() == 6
        after = new_flow(f"new-{uuid.uuid4().hex[:6]}")
        await store.write(after.records())  # the same chains continue
        report = await store.verify()
        assert report.ok and report.rows_checked == 12, report.describe()
        async with store.engine.begin() as connection:
            await connection.execute(text(
                "UPDATE audit_events SET status = 'error' WHERE identity IS NULL "
                "AND kind = 'response'"))
        assert not (await store.verify()).ok  # old rows are still protected
    finally:
        await store.close()


async def _check_backfill(store: AuditStore, flow) -> None:
    """Every row of the old request carries its caller; the rollup holds its results."""
    from modelbus_audit.queries import Filters

    team = await store.search(Filters(team="support"), limit=100)
    assert sorted(e.kind for e in team) == ["request", "response", "result", "result",
                                            "task", "task"]
    assert {(e.req_user, e.req_data_class) for e in team} == {("ana", "confidential")}
    report = await store.usage_report(Filters(team="support"))  # from the rollup
    assert sum(r["results"] for r in report) == 2 and {r["team"] for r in report} == {"support"}
    assert report == await store.usage_report(Filters(team="support", user="ana"))  # raw


def test_the_newest_script_is_alembics_head():
    """``migrate`` skips Alembic when the store is at the newest script: they must agree."""
    assert db.newest_script() == db.head_revision()
