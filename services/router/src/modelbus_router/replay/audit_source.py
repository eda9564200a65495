"""Recorded requests read from the audit store, a batch at a time, read-only.

Uses the audit service's own table definitions and engine (:mod:`modelbus_audit.tables`,
:func:`modelbus_audit.db.create_engine`) as a library; the queries it needs (request rows by
id order, then the task, result and response rows of one batch of requests; only the
columns replay reads) are written here. Only genuine rows count: flagged ones (conflicting
copies, unauthenticated or undecodable events) are skipped. Memory is one batch.

Imported by the CLI only: the router process never loads the audit package.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from modelbus_audit.db import create_engine
from modelbus_audit.tables import audit_events as ev
from sqlalchemy import case, func, null, select, tuple_

from modelbus_router.replay.recorded import Recorded, request_of, then_of

BATCH = 500
_FOLLOWERS = ("task", "result", "response")
_META = [ev.c[name] for name in (
    "id", "kind", "flags", "request_id", "event_time", "part_id", "tenant", "team", "caller_user",
    "task", "provider", "model", "data_class", "status", "cost_usd", "policy_version",
    "error_code", "input_tokens", "output_tokens", "purged_at")]
_COLUMNS = [*_META, ev.c.payload]
#: Of the rows that follow a request only a task's payload is read (its decision): results'
#: and responses' payloads (answers) are not fetched or decoded.
_FOLLOWER_COLUMNS = [*_META, case((ev.c.kind == "task", ev.c.payload),
                                  else_=null()).label("payload")]


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """Which recorded requests to replay."""

    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    team: str | None = None
    sample: int | None = None  # about this many, spread evenly over the window

    def clauses(self) -> list:
        out = [ev.c.kind == "request", ev.c.flags.is_(None)]
        if self.since is not None:
            out.append(ev.c.event_time >= self.since)
        if self.until is not None:
            out.append(ev.c.event_time < self.until)
        if self.tenant is not None:
            out.append(ev.c.tenant == self.tenant)
        if self.team is not None:
            out.append(ev.c.team == self.team)
        return out


class AuditSource:
    """``async for batch in source.batches()``: lists of :class:`Recorded`, oldest first."""

    def __init__(self, database_url: str, window: Window = Window(), batch: int = BATCH) -> None:
        self.engine = create_engine(database_url)
        self.window, self.batch = window, batch
        self.skipped = 0  # request rows that hold no usable request

    async def count(self) -> int:
        """How many requests :meth:`batches` will go through (before skipping)."""
        total = await self._count_all()
        return min(total, self.window.sample) if self.window.sample else total

    async def batches(self) -> AsyncIterator[list[Recorded]]:
        total = await self._count_all()
        stride = max(1, total // self.window.sample) if self.window.sample else 1
        after, index, taken = None, 0, 0
        while True:
            async with self.engine.connect() as conn:
                # keyset pages in the order of the (kind, event_time) index: no page sorts
                # or rescans the rows before it
                page = select(*_COLUMNS).where(*self.window.clauses())
                if after is not None:
                    page = page.where(tuple_(ev.c.event_time, ev.c.id) > tuple_(*after))
                rows = (await conn.execute(page.order_by(ev.c.event_time, ev.c.id)
                                           .limit(self.batch))).all()
                if not rows:
                    return
                after = (rows[-1].event_time, rows[-1].id)
                picked = []
                for row in rows:
                    if index % stride == 0 and (not self.window.sample
                                                or taken < self.window.sample):
                        picked.append(row)
                        taken += 1
                    index += 1
                related = await self._related(conn, picked)
            out = []
            for row in picked:
                then = then_of(related.get((row.tenant, row.request_id), []))
                request, redacted, purged = request_of(row, then)
                if request is None:
                    self.skipped += 1
                    continue
                out.append(Recorded(request, then, redacted=redacted, purged=purged,
                                    at=_utc(row.event_time)))
            if out:
                yield out

    async def recorded_for(self, requests: list) -> dict[tuple[str, str], object]:
        """What happened then to each of ``requests`` (read elsewhere) whose genuine request
        row the store holds, by (tenant, request id): its :class:`Then`."""
        keys = {(r.caller.tenant, r.request_id) for r in requests}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(*_COLUMNS).where(
                ev.c.kind == "request", ev.c.flags.is_(None),
                ev.c.request_id.in_(sorted({rid for _, rid in keys}))))).all()
            rows = [r for r in rows if (r.tenant, r.request_id) in keys]
            related = await self._related(conn, rows)
        return {(r.tenant, r.request_id): then_of(related.get((r.tenant, r.request_id), []))
                for r in rows}

    async def answers(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """The answer text recorded for each (tenant, request id), as the audit holds it
        (redacted where it redacted it; None where retention purged it or none was given)."""
        out: dict[tuple[str, str], str | None] = {}
        wanted = set(keys)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(ev.c.tenant, ev.c.request_id, ev.c.payload).where(
                ev.c.request_id.in_(sorted({rid for _, rid in wanted})),
                ev.c.kind == "response", ev.c.flags.is_(None)))).all()
        for row in rows:
            key = (row.tenant, row.request_id)
            if key in wanted and isinstance(row.payload, dict):
                out.setdefault(key, row.payload.get("output"))
        return out

    async def _count_all(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(func.count()).select_from(ev).where(*self.window.clauses()))).scalar_one()

    async def _related(self, conn, rows: list) -> dict[tuple, list]:
        """The task, result and response rows of ``rows``' requests, by (tenant, request id);
        results carry no tenant and join on the request id alone."""
        ids = sorted({r.request_id for r in rows if r.request_id})
        if not ids:
            return {}
        tenants: dict[str, set] = defaultdict(set)
        for r in rows:
            tenants[r.request_id].add(r.tenant)
        # by request id alone, so every database uses the request-id index (a condition on
        # ``kind`` lets SQLite pick the kind index and scan every row of that kind)
        result = await conn.execute(select(*_FOLLOWER_COLUMNS).where(
            ev.c.request_id.in_(ids)))
        out: dict[tuple, list] = defaultdict(list)
        for row in result.all():
            if row.kind not in _FOLLOWERS or row.flags is not None or (
                    row.tenant is not None and row.tenant not in tenants[row.request_id]):
                continue
            owners = [row.tenant] if row.tenant else sorted(tenants.get(row.request_id, ()))
            for tenant in owners:
                out[(tenant, row.request_id)].append(row)
        return out

    async def close(self) -> None:
        await self.engine.dispose()
