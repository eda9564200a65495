"""``AuditStore``: writing audit records idempotently into their hash chains, reading lineage,
verifying integrity. SQLite and PostgreSQL through the same code.

Writing a batch is one transaction (:mod:`modelbus_audit.placement`): drop records whose
identity is already stored with the same content and authenticity (an exact redelivery); keep
every other one — a record whose identity is already stored with other content gets a row key
of its own (``<identity>@<topic:partition:offset>``) and the flag ``conflict`` (an
unauthenticated copy conflicts with any earlier row, an authenticated one only with earlier
authenticated rows, so a forged copy that came first never turns the real event into the
conflict); then extend each chain from its head, give every row its request's caller
(:mod:`modelbus_audit.callers`), insert all rows with one ``executemany``, add the results to
the usage rollup (:mod:`modelbus_audit.rollup`), and move each head forward with a
compare-and-set ``UPDATE ... WHERE last_seq = <seen>`` (on PostgreSQL one statement for every
head of the batch). A concurrent writer on the same chain (a rebalance overlap, another
process) makes that update or the unique ``(chain, chain_seq)`` / ``event_id`` constraints
fail; the transaction rolls back and the batch is retried against the new head, so the chain
stays linear without ``SELECT ... FOR UPDATE``. Within one process a lock per chain avoids
such conflicts in the first place. The heads a process wrote are what it signs as checkpoints
(:meth:`AuditStore.checkpoint`), where ``verify`` starts unless asked for a full walk.
On PostgreSQL the write transaction plans every lookup for its values
(``plan_cache_mode = force_custom_plan``): a generic plan cached while a day partition was
still empty, and never re-planned where nothing ANALYZEs it, scans the partition row by row.

A database that cannot be reached raises :class:`AuditStoreUnavailable`; the consumer must then
stop committing offsets and retry, never skip.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, String, column, func, insert, or_, select, text, update, values
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from modelbus_audit import (
    callers,
    checkpoints,
    db,
    placement,
    queries,
    retention,
    rollup,
    verify_parallel,
)
from modelbus_audit import verify as verify_mod
from modelbus_audit.chain import GENESIS, seal
from modelbus_audit.stored import StoredEvent
from modelbus_audit.tables import audit_chain_heads, audit_events
from modelbus_audit.verify import Progress, VerifyReport

if TYPE_CHECKING:
    from modelbus_runtime.signing import KeyRing

    from modelbus_audit.record import AuditRecord

CONFLICT_RETRIES = 5


class AuditStoreError(RuntimeError):
    """The audit store failed to do what was asked; nothing of the batch was stored."""


class AuditStoreUnavailable(AuditStoreError):
    """The database cannot be reached (down, refusing, timing out); retry later."""


class _ChainMoved(Exception):
    """Another writer extended a chain between our read of its head and our update."""


class AuditStore:
    def __init__(self, engine: AsyncEngine, url: str, ring: KeyRing | None = None) -> None:
        self.engine = engine
        self.url = url
        #: Signs checkpoints, and makes ``verify`` start from them (none: every row, always).
        self.ring = ring
        self._written: dict[str, tuple[int, str]] = {}  # heads written since the checkpoint
        self._write_engine = db.for_writing(engine)
        self._chain_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @classmethod
    async def open(cls, url: str | None = None, *, migrate: bool = True,
                   ring: KeyRing | None = None) -> AuditStore:
        """Connect to ``url`` (default: :func:`db.database_url_from_env`) and migrate to head;
        ``ring`` signs checkpoints and lets ``verify`` start from them."""
        url = db.async_url(url) if url else db.database_url_from_env()
        try:
            store = cls(db.create_engine(url), url, ring)
        except OSError as exc:
            where = db.redacted(url)
            raise AuditStoreUnavailable(f"cannot open audit store {where}: {exc}") from exc
        if migrate:
            try:
                await store.migrate()
            except BaseException:
                await store.close()
                raise
        return store

    async def migrate(self) -> None:
        async with self._translate_errors("migrate"):
            await db.migrate(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def write(self, records: Sequence[AuditRecord]) -> int:
        """Store the records not stored yet; return how many rows were inserted."""
        unique = list(records)
        if not unique:
            return 0
        chains = sorted({record.chain for record in unique})
        async with AsyncExitStack() as stack:
            for chain in chains:  # sorted: two batches never wait on each other in a cycle
                await stack.enter_async_context(self._chain_locks[chain])
            for attempt in range(CONFLICT_RETRIES):
                try:
                    async with self._translate_errors("write"):
                        written, heads = await self._write_once(unique)
                    self._written.update(heads)  # committed: these heads are ours to sign
                    return written
                except (_ChainMoved, IntegrityError) as exc:
                    if attempt == CONFLICT_RETRIES - 1:
                        raise AuditStoreError(
                            f"audit write kept conflicting with another writer: {exc}"
                        ) from exc
                    await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _write_once(self, records: list[AuditRecord]) -> tuple[int, dict]:
        async with self._write_engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # plan each lookup for its values: a plan cached while a partition was empty
                # (and never re-planned where autovacuum does not ANALYZE) scans it row by row
                await connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            fresh = await placement.placed(connection, records)
            if not fresh:
                return 0, {}
            by_chain: defaultdict[str, list[AuditRecord]] = defaultdict(list)
            for record in fresh:
                by_chain[record.chain].append(record)
            heads = await self._heads(connection, list(by_chain))
            now = datetime.now(UTC)
            rows: list[dict[str, Any]] = []
            new_heads: dict[str, tuple[int, str]] = {}
            for chain, chain_records in by_chain.items():
                seq, prev = heads.get(chain, (0, GENESIS))
                for record in sorted(chain_records, key=lambda r: r.kafka_offset):
                    seq += 1
                    row = record.to_row()
                    row.update(chain=chain, chain_seq=seq, stored_at=now)
                    prev = seal(row, prev)
                    rows.append(row)
                new_heads[chain] = (seq, prev)
            stored = await callers.neighbours(connection, rows)
            fixes = callers.assign(rows, stored)
            await connection.execute(insert(audit_events), rows)
            await callers.apply(connection, fixes)
            await rollup.add(connection, rollup.deltas(rows, stored, fixes))
            await self._move_heads(connection, heads, new_heads, now)
            return len(rows), new_heads

    @staticmethod
    async def _heads(connection: AsyncConnection, chains: list[str]) -> dict[str, tuple[int, str]]:
        result = await connection.execute(
            select(audit_chain_heads).where(audit_chain_heads.c.chain.in_(chains))
        )
        return {row.chain: (row.last_seq, row.last_row_hash) for row in result}

    @classmethod
    async def _move_heads(cls, connection: AsyncConnection, seen: dict[str, tuple[int, str]],
                          moved: dict[str, tuple[int, str]], now: datetime) -> None:
        """Move every head the batch extended (compare-and-set on the sequence seen). On
        PostgreSQL the moves of existing heads are one ``UPDATE ... FROM (VALUES ...)`` whose
        returned chains must be all of them; elsewhere one statement per chain."""
        moves = sorted((chain, seen[chain][0], seq, last_hash)
                       for chain, (seq, last_hash) in moved.items() if chain in seen)
        for chain, (seq, last_hash) in sorted(moved.items()):
            if chain not in seen or connection.dialect.name != "postgresql":
                await cls._move_head(connection, chain, seen.get(chain), seq, last_hash, now)
        if not moves or connection.dialect.name != "postgresql":
            return
        heads = audit_chain_heads.c
        given = values(column("chain", String), column("seen", BigInteger),
                       column("seq", BigInteger), column("hash", String),
                       name="moves").data(moves)
        statement = (update(audit_chain_heads)
                     .where(heads.chain == given.c.chain, heads.last_seq == given.c.seen)
                     .values(last_seq=given.c.seq, last_row_hash=given.c.hash, updated_at=now)
                     .returning(heads.chain))
        done = set((await connection.execute(statement)).scalars())
        if len(done) != len(moves):
            raise _ChainMoved(next(chain for chain, *_ in moves if chain not in done))

    @staticmethod
    async def _move_head(
        connection: AsyncConnection,
        chain: str,
        seen: tuple[int, str] | None,
        seq: int,
        last_hash: str,
        now: datetime,
    ) -> None:
        values = {"last_seq": seq, "last_row_hash": last_hash, "updated_at": now}
        if seen is None:  # a concurrent first writer makes this insert fail: retried
            await connection.execute(insert(audit_chain_heads).values(chain=chain, **values))
            return
        result = await connection.execute(
            update(audit_chain_heads)
            .where(audit_chain_heads.c.chain == chain, audit_chain_heads.c.last_seq == seen[0])
            .values(**values)
        )
        if result.rowcount != 1:
            raise _ChainMoved(chain)

    async def lineage(self, request_id: str, tenant: str | None = None) -> list[StoredEvent]:
        """Every stored event of a request, by event time then request→…→dead letter. With
        ``tenant``: that tenant's events and the ones that name no tenant (undecodable)."""
        query = select(audit_events).where(audit_events.c.request_id == request_id)
        if tenant is not None:
            query = query.where(or_(audit_events.c.tenant == tenant,
                                    audit_events.c.tenant.is_(None)))
        async with self._translate_errors("read"), self.engine.connect() as connection:
            result = await connection.execute(query)
            events = [StoredEvent.from_row(row) for row in result.mappings()]
        return sorted(events, key=StoredEvent.sort_key)

    async def search(
        self, filters: queries.Filters, limit: int = 100, after: str | int | None = None
    ) -> list[StoredEvent]:
        """One page of events matching ``filters``, oldest first, after the cursor ``after``
        (:func:`queries.cursor_of` of the previous page's last event)."""
        async with self._translate_errors("read"), self.engine.connect() as connection:
            return await queries.search(connection, filters, limit, after)

    async def usage_report(self, filters: queries.Filters) -> list[dict[str, Any]]:
        """Tokens and cost of provider results by day, team and model."""
        async with self._translate_errors("read"), self.engine.connect() as connection:
            return await queries.usage_report(connection, filters)

    async def purge_text(self, before: datetime) -> int:
        """Retention: empty the stored text of rows older than ``before`` (chain stays valid)."""
        async with self._translate_errors("purge"):
            return await retention.purge_text(self._write_engine, before)

    async def verify(self, full: bool = False, workers: int = 1,
                     progress: Progress | None = None) -> VerifyReport:
        """Check the hash chains; report the first row of each whose hashes or links do not
        hold. Each chain starts at its newest signed checkpoint (with a signing ring), or at
        its first row with ``full`` (walked by ``workers`` processes when above 1); a full
        run that holds checkpoints the verified heads. See :mod:`modelbus_audit.checkpoints`."""
        ring = self.ring
        async with self._translate_errors("verify"), self.engine.connect() as connection:
            chains, heads = await verify_mod.chains_and_heads(connection)
            starts, forged = {}, []
            if ring is not None and not full:
                starts, forged = await checkpoints.newest(connection, ring)
            split = (full and verify_parallel.worth_it(heads, workers)
                     and verify_parallel.can_split(self.url))
            if not split:
                results = await verify_mod.walk(connection, chains, heads, starts, progress)
        if split:
            async with self._translate_errors("verify"):
                results = await verify_parallel.walk_in_processes(
                    self.url, chains, heads, workers, progress)
        problems = [verify_mod.ChainProblem(chain, "the newest checkpoint's signature does not "
                                            "hold (forged or altered checkpoint)")
                    for chain in forged]
        if full and ring is not None:
            await self._checkpoint([(r.chain, r.last_seq, r.last_row_hash) for r in results
                                    if r.problem is None and r.last_seq])
        return verify_mod.report_of(results, problems, sum(c in starts for c in chains))

    async def checkpoint(self) -> int:
        """Sign and store the heads this process wrote since its last checkpoint; return how
        many chains were checkpointed (none without a signing ring)."""
        heads, self._written = self._written, {}
        return await self._checkpoint([(c, seq, h) for c, (seq, h) in sorted(heads.items())])

    async def _checkpoint(self, heads: list[tuple[str, int, str]]) -> int:
        if self.ring is None or not heads:
            return 0
        signed = [checkpoints.sign(self.ring, *head) for head in heads]
        async with self._translate_errors("checkpoint"), self._write_engine.begin() as c:
            await checkpoints.save(c, signed)
        return len(signed)

    async def positions(self, topic: str, partition: int) -> set[int]:
        """The log offsets of ``topic:partition`` the store holds a row for."""
        query = select(audit_events.c.kafka_offset).where(
            audit_events.c.topic == topic, audit_events.c.kafka_partition == partition)
        async with self._translate_errors("read"), self.engine.connect() as connection:
            return set((await connection.execute(query)).scalars())

    async def holds_copy(self, record: AuditRecord) -> bool:
        """Whether a row of ``record``'s identity with the same content and authenticity is
        stored (so a redelivered copy at another offset was deliberately not stored again)."""
        async with self._translate_errors("read"), self.engine.connect() as connection:
            known, legacy = await placement.known(connection, [record.identity_key],
                                                  [record.ce_id] if record.ce_id else [])
        mine = (record.body_sha256, record.unauthenticated)
        return (mine in known.get(record.identity_key, [])
                or placement.stored_before_0003(record, legacy))

    async def count(self) -> int:
        """How many rows the store holds."""
        query = select(func.count()).select_from(audit_events)
        async with self._translate_errors("read"), self.engine.connect() as connection:
            return (await connection.execute(query)).scalar_one()

    def _translate_errors(self, action: str) -> _ErrorTranslation:
        return _ErrorTranslation(action, self.url)


class _ErrorTranslation:
    """Turn driver errors into AuditStoreUnavailable / AuditStoreError with a clear message."""

    def __init__(self, action: str, url: str) -> None:
        self.action, self.url = action, url

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, IntegrityError | _ChainMoved | AuditStoreError):
            return False
        where = db.redacted(self.url)
        if _is_unavailable(exc):
            raise AuditStoreUnavailable(
                f"audit store {where} unavailable during {self.action}: {_short(exc)}"
            ) from exc
        if isinstance(exc, DBAPIError):
            raise AuditStoreError(f"audit store {self.action} failed: {_short(exc)}") from exc
        return False


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return type(exc).__module__.startswith("asyncpg") and "Connect" in type(exc).__name__


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]

