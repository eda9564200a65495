"""Archiving closed days into the customer's bucket, then dropping them from the live store.

A day is archived once it ended more than ``MODELBUS_AUDIT_ARCHIVE_AFTER_DAYS`` ago, in one
transaction that holds the day still (PostgreSQL: an advisory lock so one audit replica
archives at a time, and ``LOCK TABLE <partition> IN SHARE MODE`` so no late row slips in;
SQLite: the write lock):

1. every row of the day is written as Parquet (:mod:`modelbus_audit.archive_format`, zstd,
   row groups of :data:`ROW_GROUP_ROWS`, spooled to a temporary file), one file per tenant,
   to ``events/date=…/tenant=…/part-<seq>.parquet`` (:mod:`modelbus_audit.archive_target`);
2. a manifest (JSON: the day, its ``seq`` and the previous record's hash, every file with its
   key, tenant, rows, bytes and SHA-256, and the chain ``ranges``: for every chain the runs of
   consecutive rows the day held, as [first seq, last seq, prev hash, last row hash]) is
   written to ``manifests/date=…/manifest-<seq>.json``;
3. the manifest and every file are read back and hashed (:mod:`modelbus_audit.archive_verify`);
   any difference aborts the round, nothing is dropped;
4. an ``audit_archives`` row records the manifest's key and SHA-256, the totals and the
   ranges, chained like the events (``record_hash = sha256(prev_hash + sha256(canonical JSON
   of the record))``, the first after ``GENESIS``), and, with a signing ring, a signed
   checkpoint of the archive chain (chain ``@archive`` in ``audit_checkpoints``);
5. the day leaves the live store: ``DROP TABLE`` of its partition on PostgreSQL, one
   ``DELETE`` of its rows on SQLite (no partitions there).

So a file altered in the bucket no longer matches its manifest, an altered manifest no
longer matches its record, an altered record breaks the archive chain, and a rewritten
chain no longer matches its signed checkpoint; ``verify`` of the live store crosses the
dropped rows through the recorded ranges (:mod:`modelbus_audit.verify`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import and_, delete, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from modelbus_audit import archive_format, checkpoints, db, partitions
from modelbus_audit.archive_target import ArchiveTarget
from modelbus_audit.archive_verify import ARCHIVE_CHAIN, check_manifest, record_hash
from modelbus_audit.chain import GENESIS
from modelbus_audit.periodic import every
from modelbus_audit.tables import audit_archives as ar
from modelbus_audit.tables import audit_events as ev

ROW_GROUP_ROWS = 50_000
FETCH_ROWS = 2_000
_ARCHIVE_LOCK_KEY = 0x6D62_6172_6368  # arbitrary, constant
log = logging.getLogger(__name__)


class ArchiveError(RuntimeError):
    """A day could not be archived; it stays in the live store."""


@dataclass(frozen=True)
class Archived:
    day: date
    seq: int
    files: int
    rows: int
    bytes: int
    manifest_key: str


async def closed_days(engine: AsyncEngine, before: date) -> list[date]:
    """The days before ``before`` the live store holds rows of (PostgreSQL: partitions)."""
    async with engine.connect() as connection:
        if await connection.run_sync(partitions.partitioned):
            return [d for d in await connection.run_sync(partitions.days) if d < before]
        start, _ = partitions.bounds(before)
        found = await connection.execute(
            select(func.date(ev.c.event_time)).where(ev.c.event_time < start).distinct())
        return sorted({_as_date(d) for d in found.scalars()})


async def archive_closed(engine: AsyncEngine, target: ArchiveTarget, after_days: int,
                         ring=None, today: date | None = None) -> list[Archived]:
    """Archive and drop every day that ended more than ``after_days`` days ago."""
    today = today or datetime.now(UTC).date()
    await partitions.maintain(engine, today=today)  # rows in the default partition: to their day
    done = []
    for day in await closed_days(engine, today - timedelta(days=after_days)):
        if (archived := await archive_day(engine, target, day, ring)) is not None:
            done.append(archived)
    return done


async def archive_day(engine: AsyncEngine, target: ArchiveTarget, day: date,
                      ring=None) -> Archived | None:
    """Archive ``day`` and drop it from the live store (see the module doc); None when the
    live store holds no rows of it (another replica archived it first, or an empty partition,
    which is dropped)."""
    start, end = partitions.bounds(day)
    in_day = and_(ev.c.event_time >= start, ev.c.event_time < end)
    async with db.for_writing(engine).begin() as c:
        is_pg = await c.run_sync(partitions.partitioned)
        if is_pg:
            await c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ARCHIVE_LOCK_KEY})
            if (await c.execute(text("SELECT to_regclass(:n)"),
                                {"n": partitions.name_of(day)})).scalar() is None:
                return None
            await c.execute(text(f"LOCK TABLE {partitions.name_of(day)} IN SHARE MODE"))
        tenants = (await c.execute(select(ev.c.tenant).where(in_day).distinct())).scalars().all()
        if not tenants:  # an empty day (a partition made ahead): nothing to archive
            if is_pg:
                await c.run_sync(lambda sync: partitions.drop(sync, day))
            return None
        seq, prev = await _archive_head(c)
        seq += 1
        files = []
        for tenant in sorted(tenants, key=lambda t: (t is None, t or "")):
            which = ev.c.tenant.is_(None) if tenant is None else ev.c.tenant == tenant
            key = target.file_key(day, tenant, seq)
            files.append({"key": key, "tenant": tenant,
                          **await _write_parquet(c, target, key, and_(in_day, which))})
        made_at = datetime.now(UTC)
        ranges = await _runs(c, in_day)
        manifest = {"version": 1, "day": day.isoformat(), "seq": seq, "prev_hash": prev,
                    "made_at": made_at.isoformat(), "files": files, "ranges": ranges,
                    "rows": sum(f["rows"] for f in files)}
        body = json.dumps(manifest, sort_keys=True, indent=1).encode()
        manifest_key = target.manifest_key(day, seq)
        await target.put(manifest_key, body)
        manifest_sha = hashlib.sha256(body).hexdigest()
        if problems := await check_manifest(target, manifest_key, manifest_sha):
            raise ArchiveError(f"archive of {day} did not read back as written: "
                               + "; ".join(problems))
        record: dict[str, Any] = {
            "seq": seq, "day": day, "manifest_key": manifest_key,
            "manifest_sha256": manifest_sha, "files": len(files), "rows": manifest["rows"],
            "bytes": sum(f["bytes"] for f in files), "ranges": ranges, "made_at": made_at,
            "prev_hash": prev}
        record["record_hash"] = record_hash(record, prev)
        await c.execute(insert(ar).values(**record, dropped_at=made_at))
        if ring is not None:
            await checkpoints.save(c, [checkpoints.sign(ring, ARCHIVE_CHAIN, seq,
                                                        record["record_hash"], made_at)])
        if is_pg:
            await c.run_sync(lambda sync: partitions.drop(sync, day))
        else:
            await c.execute(delete(ev).where(in_day))
    return Archived(day, seq, len(files), record["rows"], record["bytes"], manifest_key)


async def _archive_head(c: AsyncConnection) -> tuple[int, str]:
    last = (await c.execute(select(ar.c.seq, ar.c.record_hash)
                            .order_by(ar.c.seq.desc()).limit(1))).first()
    return (last.seq, last.record_hash) if last else (0, GENESIS)


async def _write_parquet(c: AsyncConnection, target: ArchiveTarget, key: str,
                         where) -> dict[str, Any]:
    """The matching rows as one Parquet object at ``key``: its rows, bytes and SHA-256."""
    rows, pending = 0, []
    with tempfile.TemporaryFile() as spool:
        writer = pq.ParquetWriter(spool, archive_format.SCHEMA, compression="zstd")
        query = select(*archive_format.COLUMNS)
        async for part in _pages(c, query, where, (ev.c.event_time, ev.c.id)):
            pending.append(archive_format.batch(part))
            rows += len(part)
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                await asyncio.to_thread(_flush, writer, pending)
                pending = []
        await asyncio.to_thread(_flush, writer, pending)
        writer.close()
        size = spool.tell()
        spool.seek(0)
        digest = await asyncio.to_thread(hashlib.file_digest, spool, "sha256")
        spool.seek(0)
        await target.put(key, spool)
    return {"rows": rows, "bytes": size, "sha256": digest.hexdigest()}


async def _pages(c: AsyncConnection, query, where, keys) -> AsyncIterator[list]:
    """The rows of ``query`` matching ``where`` in pages of :data:`FETCH_ROWS`, keyset on the
    unique ``keys`` (plain queries: a server-side cursor would keep the partition in use
    until the transaction that drops it ends)."""
    after = None
    while True:
        page_query = query.where(where).order_by(*keys).limit(FETCH_ROWS)
        if after is not None:
            page_query = page_query.where(tuple_(*keys) > tuple_(*after))
        page = (await c.execute(page_query)).mappings().all()
        if page:
            yield page
        if len(page) < FETCH_ROWS:
            return
        after = [page[-1][k.name] for k in keys]


def _flush(writer: pq.ParquetWriter, batches: list[pa.RecordBatch]) -> None:
    if batches:
        writer.write_table(pa.Table.from_batches(batches, archive_format.SCHEMA),
                           ROW_GROUP_ROWS)


async def _runs(c: AsyncConnection, where) -> dict[str, list[list]]:
    """Per chain, the runs of consecutive rows matching ``where``:
    [first seq, last seq, prev hash of the first, row hash of the last]."""
    query = select(ev.c.chain, ev.c.chain_seq, ev.c.prev_hash, ev.c.row_hash)
    runs: dict[str, list[list]] = {}
    async for page in _pages(c, query, where, (ev.c.chain, ev.c.chain_seq)):
        for row in page:
            chain, seq = row["chain"], row["chain_seq"]
            prev_hash, row_hash = row["prev_hash"], row["row_hash"]
            chain_runs = runs.setdefault(chain, [])
            if chain_runs and chain_runs[-1][1] == seq - 1:
                chain_runs[-1][1], chain_runs[-1][3] = seq, row_hash
            else:
                chain_runs.append([seq, seq, prev_hash, row_hash])
    return runs


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


async def run_archive(engine: AsyncEngine, target: ArchiveTarget | None, after_days: int,
                      interval_s: float, stop: asyncio.Event, ring=None) -> None:
    """Partition maintenance (:func:`partitions.maintain`) and, with a target and
    ``after_days`` > 0, archiving closed days, now and every ``interval_s``."""

    async def round_() -> None:
        if created := await partitions.maintain(engine):
            log.info("created audit partitions for %s", ", ".join(map(str, created)))
        if target is not None and after_days > 0:
            for done in await archive_closed(engine, target, after_days, ring):
                log.info("archived %s: %d rows in %d files to %s, dropped from the live store",
                         done.day, done.rows, done.files, target)

    await every(interval_s, stop, round_, "audit maintenance")
