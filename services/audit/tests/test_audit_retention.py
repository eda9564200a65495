"""Retention purge on SQLite and PostgreSQL: old text goes, metadata and a verifiable chain
stay; tampering with a purged row's metadata, or a kept row's text, is still caught."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text


async def _raw(store, sql: str, **params) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(text(sql), params)


async def test_purge_removes_old_text_and_keeps_the_chain_verifiable(store, new_flow):
    old = new_flow("ret-old")
    await store.write(old.records())
    recent = new_flow("ret-new", start=old.decision.decided_at + timedelta(days=30))
    await store.write(recent.records())
    cutoff = old.decision.decided_at + timedelta(days=1)
    assert await store.purge_text(cutoff) == 6
    assert await store.purge_text(cutoff) == 0  # idempotent
    purged = await store.lineage("ret-old")
    assert all(e.payload is None and e.purged_at is not None for e in purged)
    assert purged[0].kind == "request" and purged[0].tenant == "acme"
    assert purged[-1].cost_usd == 0.00012 and purged[-1].policy_version == "v7"
    kept = await store.lineage("ret-new")
    assert all(e.payload is not None and e.purged_at is None for e in kept)
    report = await store.verify()
    assert report.ok, report.describe()


async def test_tampering_after_a_purge_is_still_reported_at_the_row(store, new_flow):
    flow = new_flow("ret-t")
    await store.write(flow.records())
    await store.purge_text(flow.decision.decided_at + timedelta(milliseconds=100))  # request, tasks
    events = await store.lineage("ret-t")
    purged = next(e for e in events if e.purged_at is not None)
    kept = next(e for e in events if e.purged_at is None and e.kind == "result")
    await _raw(store, "UPDATE audit_events SET team = 'someone-else' WHERE id = :id",
               id=purged.id)
    report = await store.verify()
    assert report.first_bad_id == purged.id and "content_hash" in report.reason
    await _raw(store, "UPDATE audit_events SET team = :t WHERE id = :id", t=purged.team,
               id=purged.id)
    assert (await store.verify()).ok
    await _raw(store, "UPDATE audit_events SET body_excerpt = 'forged' WHERE id = :id",
               id=kept.id)
    report = await store.verify()
    assert report.first_bad_id == kept.id and "payload or text was changed" in report.reason
