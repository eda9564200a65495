"""Tamper evidence on SQLite and PostgreSQL: verify passes on an untouched store and names the
exact first bad row after raw-SQL edits, deletions and truncation; stale chain heads retry."""

from __future__ import annotations

from modelbus_audit.chain import GENESIS
from modelbus_audit.store import AuditStore
from modelbus_schemas.topics import RESULTS
from sqlalchemy import text


async def _ids_in_chain(store: AuditStore, chain: str) -> list[tuple[int, str]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id, event_id FROM audit_events WHERE chain = :c ORDER BY chain_seq"),
            {"c": chain},
        )
        return [(row.id, row.event_id) for row in rows]


async def _raw(store: AuditStore, sql: str, **params) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(text(sql), params)


async def _store_three_flows(store, new_flow) -> str:
    for name in ("t-1", "t-2", "t-3"):
        await store.write(new_flow(name).records())
    return f"{RESULTS}:0"  # 6 results in one chain


async def test_untouched_store_verifies(store, new_flow):
    await _store_three_flows(store, new_flow)
    report = await store.verify()
    assert report.ok, report.describe()
    assert report.rows_checked == 18
    assert report.chains_checked == 5  # requests, 2 task topics, results, responses
    assert report.first_bad_id is None and "OK" in report.describe()


async def test_edited_payload_is_reported_at_that_row(store, new_flow):
    chain = await _store_three_flows(store, new_flow)
    target_id, target_event = (await _ids_in_chain(store, chain))[2]
    cast = "CAST(:p AS JSON)" if store.engine.dialect.name == "postgresql" else ":p"
    await _raw(store, f"UPDATE audit_events SET payload = {cast} WHERE id = :id",
               p='{"status": "ok", "cost_usd": 0}', id=target_id)
    report = await store.verify()
    assert not report.ok
    assert (report.first_bad_id, report.first_bad_event_id) == (target_id, target_event)
    assert "content_hash mismatch" in report.reason
    assert len(report.problems) == 1  # other chains are intact


async def test_edited_search_column_is_reported(store, new_flow):
    chain = await _store_three_flows(store, new_flow)
    target_id, _ = (await _ids_in_chain(store, chain))[0]
    await _raw(store, "UPDATE audit_events SET cost_usd = 0, status = 'ok' WHERE id = :id",
               id=target_id)
    report = await store.verify()
    assert report.first_bad_id == target_id and "content_hash" in report.reason


async def test_deleted_middle_row_is_reported_at_the_next_row(store, new_flow):
    chain = await _store_three_flows(store, new_flow)
    rows = await _ids_in_chain(store, chain)
    await _raw(store, "DELETE FROM audit_events WHERE id = :id", id=rows[3][0])
    report = await store.verify()
    assert not report.ok
    assert (report.first_bad_id, report.first_bad_event_id) == rows[4]
    assert "chain_seq gap: expected 4, found 5" in report.reason


async def test_renumbered_chain_after_delete_is_caught_by_the_prev_link(store, new_flow):
    chain = await _store_three_flows(store, new_flow)
    rows = await _ids_in_chain(store, chain)
    await _raw(store, "DELETE FROM audit_events WHERE id = :id", id=rows[1][0])
    await _raw(store, "UPDATE audit_events SET chain_seq = chain_seq + 1000 "
                      "WHERE chain = :c AND chain_seq > 2", c=chain)
    await _raw(store, "UPDATE audit_events SET chain_seq = chain_seq - 1001 "
                      "WHERE chain = :c AND chain_seq > 1000", c=chain)
    report = await store.verify()
    assert report.first_bad_id == rows[2][0]
    # chain_seq is hashed content, so renumbering shows up as an edit of that row
    assert "content_hash mismatch" in report.reason


async def test_rows_cut_from_the_end_disagree_with_the_chain_head(store, new_flow):
    chain = await _store_three_flows(store, new_flow)
    rows = await _ids_in_chain(store, chain)
    await _raw(store, "DELETE FROM audit_events WHERE id = :id", id=rows[-1][0])
    report = await store.verify()
    assert not report.ok and report.first.chain == chain
    assert report.first_bad_id is None
    assert "chain head expects last row seq 6 but the chain ends at seq 5" in report.reason


async def test_rewritten_hash_columns_are_reported(store, new_flow):
    chain = await _store_three_flows(store, new_flow)
    rows = await _ids_in_chain(store, chain)
    await _raw(store, "UPDATE audit_events SET row_hash = :h WHERE id = :id",
               h=GENESIS, id=rows[1][0])
    report = await store.verify()
    assert report.first_bad_id == rows[1][0]
    assert "row_hash mismatch" in report.reason


async def test_first_bad_row_is_the_earliest_across_chains(store, new_flow):
    await _store_three_flows(store, new_flow)
    async with store.engine.connect() as connection:
        ids = [r.id for r in await connection.execute(
            text("SELECT id FROM audit_events ORDER BY id"))]
    late, early = ids[-1], ids[1]
    for row_id in (late, early):
        await _raw(store, "UPDATE audit_events SET tenant = 'evil' WHERE id = :id", id=row_id)
    report = await store.verify()
    assert [p.row_id for p in report.problems] == sorted([early, late])
    assert report.first_bad_id == early


async def test_a_stale_chain_head_makes_the_writer_retry(store, new_flow, monkeypatch):
    """Simulates a second writer having extended the chain after we read its head."""
    await store.write(new_flow("h-1").records())
    real_heads = AuditStore._heads
    calls = {"n": 0}

    async def stale_once(connection, chains):
        calls["n"] += 1
        heads = await real_heads(connection, chains)
        if calls["n"] == 1:
            return {chain: (seq - 1, GENESIS) for chain, (seq, _) in heads.items()}
        return heads

    monkeypatch.setattr(AuditStore, "_heads", staticmethod(stale_once))
    assert await store.write(new_flow("h-2").records()) == 6
    assert calls["n"] == 2
    report = await store.verify()
    assert report.ok and report.rows_checked == 12
