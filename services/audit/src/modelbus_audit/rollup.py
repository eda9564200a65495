"""The usage rollup: tokens, cost and counts of provider results per hour × tenant × team ×
provider × model (``audit_usage_hourly``), maintained at ingestion so usage reports read a few
hundred rows instead of grouping millions of events.

Every batch adds its genuine (unflagged) results in the transaction that inserts them, and the
store inserts only rows it did not hold (deduplicated by event identity), so a redelivered
event is never counted twice. A result counts its request once per (provider, model): in the
hour of its first result. A result stored before its request is counted under team ``''``;
when the request arrives (:mod:`modelbus_audit.callers` fixes the stored rows) its amounts move
to the request's team in the same transaction. Upserts go in key order, so two writers never
lock rollup rows in opposite orders.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.callers import Fix
from modelbus_audit.tables import audit_usage_hourly as uh

KEYS = ("hour", "tenant", "team", "provider", "model")
AMOUNTS = ("requests", "results", "input_tokens", "output_tokens", "cost_usd")
Key = tuple[datetime, str, str, str, str]
#: Filters the rollup has no column for: a report with one of them groups the raw results.
UNKEPT = ("user", "task", "data_class", "status", "request_id")


def hour_of(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _key(row: dict[str, Any], team: str | None) -> Key:
    return (hour_of(row["event_time"]), row.get("tenant") or "", team or "",
            row.get("provider") or "", row.get("model") or "")


def _group(row: dict[str, Any]) -> tuple:
    return (row.get("tenant"), row.get("request_id"), row.get("provider"), row.get("model"))


def _counted(row: dict[str, Any]) -> bool:
    return row.get("kind") == "result" and not row.get("flags")


def deltas(rows: list[dict], stored: list[dict], fixes: list[Fix]) -> dict[Key, list]:
    """What this batch adds to (and moves between) rollup rows."""
    out: dict[Key, list] = defaultdict(lambda: [0, 0, 0, 0, 0.0])
    seen = {_group(row) for row in stored if _counted(row)}
    for row in rows:
        if _counted(row):
            first = _group(row) not in seen
            seen.add(_group(row))
            _add(out[_key(row, row.get("req_team"))], row, first, 1)
    moved: set[tuple] = set()
    for fix in sorted(fixes, key=lambda f: f.row["id"]):
        if _counted(fix.row) and fix.caller[0]:
            first = _group(fix.row) not in moved
            moved.add(_group(fix.row))
            _add(out[_key(fix.row, None)], fix.row, first, -1)
            _add(out[_key(fix.row, fix.caller[0])], fix.row, first, 1)
    return out


def _add(amounts: list, row: dict[str, Any], first: bool, sign: int) -> None:
    amounts[0] += sign * int(first)
    amounts[1] += sign
    amounts[2] += sign * (row.get("input_tokens") or 0)
    amounts[3] += sign * (row.get("output_tokens") or 0)
    amounts[4] += sign * (row.get("cost_usd") or 0.0)


async def add(connection: AsyncConnection, changes: dict[Key, list]) -> None:
    """Upsert ``changes`` into the rollup (one statement, rows in key order)."""
    params = [dict(zip(KEYS + AMOUNTS, (*key, *amounts), strict=True))
              for key, amounts in sorted(changes.items()) if any(amounts)]
    if not params:
        return
    if connection.dialect.name == "postgresql":  # the dialects load on the first write
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(uh)
    statement = statement.on_conflict_do_update(
        index_elements=[uh.c[k] for k in KEYS],
        set_={name: uh.c[name] + statement.excluded[name] for name in AMOUNTS})
    await connection.execute(statement, params)


def day_of(connection: AsyncConnection, column):
    """The UTC day of a timestamp column as ``YYYY-MM-DD`` text."""
    if connection.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def answers(filters) -> bool:
    """Whether the rollup can answer a report with ``filters``: only tenant, team, provider
    and model filters, and a time window on whole hours."""
    if any(getattr(filters, name) for name in UNKEPT):
        return False
    return all(moment is None or moment == hour_of(moment)
               for moment in (filters.since, filters.until))


async def report(connection: AsyncConnection, filters) -> list[dict[str, Any]]:
    """The usage report (see :func:`modelbus_audit.queries.usage_report`) from the rollup."""
    day = day_of(connection, uh.c.hour).label("day")
    clauses = [uh.c[name] == getattr(filters, name)
               for name in ("tenant", "team", "provider", "model") if getattr(filters, name)]
    if filters.since is not None:
        clauses.append(uh.c.hour >= filters.since)
    if filters.until is not None:
        clauses.append(uh.c.hour < filters.until)
    query = (
        select(day, uh.c.team, uh.c.provider, uh.c.model,
               *(func.sum(uh.c[name]).label(name) for name in AMOUNTS))
        .where(*clauses)
        .group_by(day, uh.c.team, uh.c.provider, uh.c.model)
        .having(func.sum(uh.c.results) > 0)
        .order_by(day, uh.c.team, uh.c.provider, uh.c.model)
    )
    rows = (await connection.execute(query)).mappings().all()
    return [{**row, "team": row["team"] or None, "provider": row["provider"] or None,
             "model": row["model"] or None} for row in rows]
