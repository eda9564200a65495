"""Signed checkpoints (SQLite and PostgreSQL): verify starts each chain at its newest signed
checkpoint and still finds what changed since; an altered or forged checkpoint is reported;
``verify --full`` walks every row, in several processes, and checkpoints the heads."""

from __future__ import annotations

import uuid

from modelbus_audit import checkpoints, verify_parallel
from modelbus_audit.store import AuditStore
from modelbus_runtime.signing import KeyRing
from sqlalchemy import text

RING = KeyRing.parse("k1:" + "s" * 32)


async def _signed(store_url: str) -> AuditStore:
    return await AuditStore.open(store_url, ring=RING)


async def _edit(store: AuditStore, sql: str) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(text(sql))


async def test_verify_starts_at_the_checkpoints_and_checks_what_came_after(
        store, store_url, new_flow):
    signed = await _signed(store_url)
    try:
        old = new_flow(f"old-{uuid.uuid4().hex[:6]}")
        await signed.write(old.records())
        assert await signed.checkpoint() == 5  # one per chain written
        assert await signed.checkpoint() == 0  # nothing new since
        new = new_flow(f"new-{uuid.uuid4().hex[:6]}")
        await signed.write(new.records())
        report = await signed.verify()
        assert report.ok and report.rows_checked == 6 and report.from_checkpoints == 5
        await _edit(signed, "UPDATE audit_events SET model = 'x' WHERE request_id = "
                    f"'{old.request_id}' AND kind = 'result'")  # before the checkpoints
        assert (await signed.verify()).ok  # not looked at ...
        full = await signed.verify(full=True)
        assert not full.ok and "content_hash mismatch" in full.describe()  # ... but by --full
        last = new_flow(f"last-{uuid.uuid4().hex[:6]}")
        await signed.write(last.records())  # after the checkpoints the full run made
        await _edit(signed, "UPDATE audit_events SET cost_usd = 9 WHERE request_id = "
                    f"'{last.request_id}' AND kind = 'response'")
        assert "content_hash mismatch" in (await signed.verify()).describe()
    finally:
        await signed.close()


async def test_a_rewritten_anchor_or_forged_checkpoint_is_reported(store, store_url, flow):
    signed = await _signed(store_url)
    try:
        await signed.write(flow.records())
        await signed.checkpoint()
        await _edit(signed, "UPDATE audit_events SET row_hash = 'f' WHERE kind = 'request'")
        report = await signed.verify()
        assert not report.ok and "no longer carries the signed row_hash" in report.describe()
        forged = checkpoints.sign(KeyRing.parse("k1:" + "x" * 32), "modelbus.results.v1:0",
                                  99, "0" * 64)
        async with signed.engine.begin() as connection:
            await checkpoints.save(connection, [forged])
        assert "signature does not hold" in (await signed.verify()).describe()
    finally:
        await signed.close()


async def test_full_verify_in_processes_checkpoints_the_verified_heads(
        store, store_url, new_flow, monkeypatch):
    monkeypatch.setattr(verify_parallel, "PARALLEL_MIN_ROWS", 1)  # processes for a small store
    signed = await _signed(store_url)
    try:
        for i in range(3):
            await signed.write(new_flow(f"p-{i}-{uuid.uuid4().hex[:4]}").records())
        seen = []
        report = await signed.verify(full=True, workers=2,
                                     progress=lambda *p: seen.append(p))
        assert report.ok and report.rows_checked == 18 and report.chains_checked == 5
        assert seen[-1] == (18, 5, 5)
        again = await signed.verify()  # from the checkpoints the full run made
        assert again.ok and again.rows_checked == 0 and again.from_checkpoints == 5
        await _edit(signed, "DELETE FROM audit_events WHERE kind = 'response'")
        assert "no longer carries the signed row_hash" in (await signed.verify()).describe()
    finally:
        await signed.close()


def test_chains_are_shared_between_processes_by_rows():
    heads = {"a": (90, ""), "b": (50, ""), "c": (40, ""), "d": (10, "")}
    assert sorted(map(sorted, verify_parallel.groups(list(heads), heads, 2))) == [
        ["a", "d"], ["b", "c"]]
