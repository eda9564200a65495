"""Retention: removing old prompt and response text while the hash chains stay verifiable,
and the claim-checked content (blobs) stored as long ago.

Rows themselves leave the store only with their day, archived first (on PostgreSQL by
dropping the day's partition, never row by row: :mod:`modelbus_audit.archive`).

A purge empties the text columns (``payload``, ``body_excerpt``, ``dlq_error``) of rows whose
``event_time`` is before the cutoff and sets ``purged_at``. It never deletes rows and never
touches the hash columns or the metadata (who, which model, policy version, cost, outcome):
those stay answerable for as long as the store lives. ``verify`` checks a purged row against
the ``payload_sha256`` it was written with (see :mod:`modelbus_audit.chain`), so the chain
still verifies; editing a purged row's metadata is still reported at that row.

Rows are purged in id-ordered slices of :data:`PURGE_SLICE`, one short transaction each, so
a purge of millions of rows never holds a long lock against the ingesting consumer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from modelbus_audit.periodic import every
from modelbus_audit.tables import audit_events as ev

log = logging.getLogger(__name__)
PURGE_SLICE = 1000


async def purge_text(engine: AsyncEngine, before: datetime, now: datetime | None = None) -> int:
    """Empty the text of every row with ``event_time < before``; return how many rows."""
    now = now or datetime.now(UTC)
    total, after_id = 0, 0
    while True:
        async with engine.begin() as connection:
            ids = (
                await connection.execute(
                    select(ev.c.id)
                    .where(ev.c.id > after_id, ev.c.event_time < before, ev.c.purged_at.is_(None))
                    .order_by(ev.c.id)
                    .limit(PURGE_SLICE)
                )
            ).scalars().all()
            if not ids:
                return total
            result = await connection.execute(
                update(ev)
                .where(ev.c.id.in_(ids), ev.c.payload_sha256.is_not(None))
                .values(payload=None, body_excerpt=None, dlq_error=None, purged_at=now)
            )
            total += result.rowcount  # rows from before revision 0002 cannot be purged
            after_id = ids[-1]


async def purge(store, blobs, before: datetime) -> tuple[int, int]:
    """One retention round: the text of rows before ``before``, and the claim-checked
    content stored before then (the blobs the events reference,
    :mod:`modelbus_runtime.claimcheck`). Returns (rows purged, blobs deleted)."""
    rows = await store.purge_text(before)
    deleted = await blobs.delete_older_than(before) if blobs is not None else 0
    return rows, deleted


async def run_retention(
    store, days: float, interval_s: float, stop: asyncio.Event, blobs=None
) -> None:
    """Purge text and blobs older than ``days`` every ``interval_s`` until ``stop`` is set.
    A store outage skips one round (logged); the next round catches up."""

    async def round_() -> None:
        purged, deleted = await purge(store, blobs, datetime.now(UTC) - timedelta(days=days))
        if purged or deleted:
            log.info("retention purged the text of %d audit rows and deleted %d "
                     "claim-checked blobs", purged, deleted)

    await every(interval_s, stop, round_, "retention purge")
