"""Compliance queries over ``audit_events``: filtered search with keyset pagination, and the
usage and cost report by day, team and model. SQLAlchemy Core, the same SQL shape on SQLite and
PostgreSQL.

Team, user and data class filters match the *request's* caller (``req_team``, ``req_user``,
``req_data_class``, see :mod:`modelbus_audit.callers`), so they find a request's results,
responses and dead letters too. Search pages are ordered by (event time, row id) and continue
after the cursor of the previous page's last row (:func:`cursor_of`): every filter has an index
ending in (event_time, id), so a page — and a time window — starts where it should instead of
scanning from the first row. The report reads the hourly rollup (:mod:`modelbus_audit.rollup`)
when it can, and groups the raw results (flagged rows left out) when it is asked for filters
the rollup does not keep (user, task, status, a window not on whole hours).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit import rollup
from modelbus_audit.stored import StoredEvent, as_utc
from modelbus_audit.tables import audit_events as ev

MAX_PAGE = 1000
_COLUMN_OF = {"team": "req_team", "user": "req_user", "data_class": "req_data_class"}
Cursor = tuple[datetime, int]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True)
class Filters:
    """What compliance searches by; every field optional, all given fields must match."""

    tenant: str | None = None
    team: str | None = None
    user: str | None = None
    task: str | None = None
    provider: str | None = None
    model: str | None = None
    data_class: str | None = None
    status: str | None = None
    kind: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list:
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in ("since", "until"):
                continue
            out.append(ev.c[_COLUMN_OF.get(f.name, f.name)] == value)
        if self.since is not None:
            out.append(ev.c.event_time >= self.since)
        if self.until is not None:
            out.append(ev.c.event_time < self.until)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def cursor_of(event: StoredEvent) -> str:
    """The opaque cursor of the page ending with ``event``: ``<epoch µs>-<row id>``."""
    moment = event.event_time
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{event.id}"


def parse_cursor(text: str | int) -> Cursor | int:
    """A cursor from :func:`cursor_of` (or, as before cursors, a plain row id); ``ValueError``
    when it is neither, or out of range."""
    micros, sep, row_id = str(text).rpartition("-")
    try:
        number = int(row_id)
        if not 0 <= number <= MAX_ROW_ID or not row_id.isdigit():
            raise ValueError
        if not sep:
            return number
        return EPOCH + timedelta(microseconds=int(micros)), number
    except (ValueError, OverflowError):
        raise ValueError(f"not a search cursor: {str(text)[:40]!r}") from None


def search_query(filters: Filters, limit: int, after: Cursor | None = None) -> Select:
    keyset = [] if after is None else [tuple_(ev.c.event_time, ev.c.id) > tuple_(*after)]
    return (
        select(ev)
        .where(*keyset, *filters.clauses())
        .order_by(ev.c.event_time, ev.c.id)
        .limit(max(1, min(limit, MAX_PAGE)))
    )


async def search(
    connection: AsyncConnection, filters: Filters, limit: int = 100,
    after: str | int | None = None,
) -> list[StoredEvent]:
    """One page of ``filters``' events after ``after`` (a cursor, or — as before cursors — the
    id of the last row of the previous page)."""
    result = await connection.execute(search_query(filters, limit, await _cursor(connection,
                                                                                 after)))
    return [StoredEvent.from_row(row) for row in result.mappings()]


async def _cursor(connection: AsyncConnection, after: str | int | None) -> Cursor | None:
    if after in (None, "", 0, "0"):
        return None
    cursor = parse_cursor(after)
    if isinstance(cursor, int):
        query = select(ev.c.event_time).where(ev.c.id == cursor)
        moment = (await connection.execute(query)).scalar_one_or_none()
        return None if moment is None else (as_utc(moment), cursor)
    return cursor


async def usage_report(connection: AsyncConnection, filters: Filters) -> list[dict[str, Any]]:
    """Rows of day, team, model: requests, results, tokens and cost, by day then team, model."""
    if rollup.answers(filters):
        rows = await rollup.report(connection, filters)
    else:
        rows = await _raw_usage(connection, filters)
    return [
        {
            "day": row["day"], "team": row["team"], "provider": row["provider"],
            "model": row["model"], "requests": int(row["requests"]),
            "results": int(row["results"]), "input_tokens": int(row["input_tokens"] or 0),
            "output_tokens": int(row["output_tokens"] or 0),
            "cost_usd": round(float(row["cost_usd"] or 0.0), 9),
        }
        for row in rows
    ]


async def _raw_usage(connection: AsyncConnection, filters: Filters) -> list:
    day = rollup.day_of(connection, ev.c.event_time).label("day")
    team = ev.c.req_team.label("team")
    query = (
        select(
            day, team, ev.c.provider, ev.c.model,
            func.count(func.distinct(ev.c.request_id)).label("requests"),
            func.count().label("results"),
            func.sum(func.coalesce(ev.c.input_tokens, 0)).label("input_tokens"),
            func.sum(func.coalesce(ev.c.output_tokens, 0)).label("output_tokens"),
            func.sum(func.coalesce(ev.c.cost_usd, 0.0)).label("cost_usd"),
        )
        .where(ev.c.kind == "result", ev.c.flags.is_(None),
               *Filters(**{**filters.as_dict(), "kind": None}).clauses())
        .group_by(day, ev.c.req_team, ev.c.provider, ev.c.model)
        .order_by(day, ev.c.req_team, ev.c.provider, ev.c.model)
    )
    return (await connection.execute(query)).mappings().all()
