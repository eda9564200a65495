"""Compliance queries over ``audit_events``: filtered search with keyset pagination, and the
usage and cost report by day, team and model (a result's team is its own request's: same
request id and tenant; flagged rows — conflicting copies, unauthenticated or undecodable
results — are not usage and are left out). SQLAlchemy Core, the same SQL shape on SQLite and
PostgreSQL (only the day expression differs).

Search pages are ordered by row id (insertion order) and continue after the last id of the
previous page, so a page is stable while new rows arrive. The report counts provider results:
their tokens and cost by model; the team comes from the request's own or its tasks' caller
(results do not carry one), so results of a request without a stored caller count as team
``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.stored import StoredEvent
from modelbus_audit.tables import audit_events as ev

MAX_PAGE = 1000
_COLUMN_OF = {"user": "caller_user"}


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


def search_query(filters: Filters, limit: int, after_id: int = 0) -> Select:
    return (
        select(ev)
        .where(ev.c.id > after_id, *filters.clauses())
        .order_by(ev.c.id)
        .limit(max(1, min(limit, MAX_PAGE)))
    )


async def search(
    connection: AsyncConnection, filters: Filters, limit: int = 100, after_id: int = 0
) -> list[StoredEvent]:
    result = await connection.execute(search_query(filters, limit, after_id))
    return [StoredEvent.from_row(row) for row in result.mappings()]


def _day(connection: AsyncConnection):
    if connection.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", ev.c.event_time), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", ev.c.event_time)


async def usage_report(connection: AsyncConnection, filters: Filters) -> list[dict[str, Any]]:
    """Rows of day, team, model: requests, results, errors, tokens and cost, by day then cost."""
    callers = ev.alias("callers")
    teams = (
        select(callers.c.request_id, callers.c.tenant, func.max(callers.c.team).label("team"))
        .where(callers.c.kind.in_(("request", "task")), callers.c.team.is_not(None))
        .group_by(callers.c.request_id, callers.c.tenant)
        .subquery("teams")
    )
    same_request = and_(teams.c.request_id == ev.c.request_id,
                        or_(teams.c.tenant == ev.c.tenant, ev.c.tenant.is_(None)))
    team_filter = [teams.c.team == filters.team] if filters.team else []
    result_filters = Filters(**{**filters.as_dict(), "team": None, "kind": None})
    day = _day(connection).label("day")
    query = (
        select(
            day,
            teams.c.team,
            ev.c.provider,
            ev.c.model,
            func.count(func.distinct(ev.c.request_id)).label("requests"),
            func.count().label("results"),
            func.sum(func.coalesce(ev.c.input_tokens, 0)).label("input_tokens"),
            func.sum(func.coalesce(ev.c.output_tokens, 0)).label("output_tokens"),
            func.sum(func.coalesce(ev.c.cost_usd, 0.0)).label("cost_usd"),
        )
        .select_from(ev.outerjoin(teams, same_request))
        .where(and_(ev.c.kind == "result", ev.c.flags.is_(None), *result_filters.clauses(),
                    *team_filter))
        .group_by(day, teams.c.team, ev.c.provider, ev.c.model)
        .order_by(day, teams.c.team, ev.c.provider, ev.c.model)
    )
    rows = (await connection.execute(query)).mappings().all()
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
