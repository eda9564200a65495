"""PostgreSQL day partitions of ``audit_events``: naming, listing, creating ahead, dropping.

On PostgreSQL ``audit_events`` is partitioned by range on ``event_time``, one partition per UTC
day (``audit_events_pYYYYMMDD``), plus ``audit_events_default`` for rows whose day has no
partition yet (an event time far in the past or future: the time comes from the event), so an
insert never fails. Days, not months: retention and the archive work on closed days (a day is
the unit of "older than N days"), a day of a busy store (10M events / 30 days ≈ 330k rows) is
an archive file set and a drop of seconds, and the live window of a few weeks to months stays
at tens to a few hundred partitions, which the planner prunes cheaply.

:func:`maintain` (run by the audit service every hour, in
:func:`modelbus_audit.archive.run_archive`) creates the partitions of yesterday to ``ahead``
days from now, and one for every day the default partition holds rows of: those rows are moved into it in the same transaction (the new table
is filled from the default partition, then attached), so the default partition stays empty in
steady state. SQLite has no partitions: every function here is for PostgreSQL only, and
:func:`partitioned` is False on SQLite.

Dropping a partition (:func:`drop`) is the only way rows leave the PostgreSQL store; the
archive (:mod:`modelbus_audit.archive`) does it after the day is written and verified.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

PARENT = "audit_events"
DEFAULT = "audit_events_default"
AHEAD_DAYS = 3
_NAME = re.compile(r"^audit_events_p(\d{8})$")


def name_of(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def bounds(day: date) -> tuple[datetime, datetime]:
    """The [start, end) of ``day`` in UTC."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(text(
        "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t)"), {"t": PARENT})
    return found.first() is not None


def days(connection: Connection) -> list[date]:
    """The days that have a partition, oldest first."""
    names = connection.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": PARENT}).scalars()
    return sorted(d for d in map(day_of, names) if d is not None)


def default_days(connection: Connection) -> list[date]:
    """The days the default partition holds rows of."""
    found = connection.execute(text(
        f"SELECT DISTINCT (event_time AT TIME ZONE 'UTC')::date FROM {DEFAULT}")).scalars()
    return sorted(found)


def create(connection: Connection, day: date) -> bool:
    """Create the partition of ``day`` unless it exists, moving the default partition's rows
    of that day into it; return whether it was created."""
    name = name_of(day)
    if connection.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return False
    start, end = bounds(day)
    window = {"start": start, "end": end}
    connection.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    connection.execute(text(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE event_time >= :start AND event_time < :end "
        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"), window)
    connection.execute(text(
        f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
    return True


def ensure(connection: Connection, today: date, ahead: int = AHEAD_DAYS) -> list[date]:
    """Partitions from yesterday to ``today + ahead`` and for every day in the default
    partition; return the days created."""
    wanted = {today + timedelta(days=n) for n in range(-1, ahead + 1)}
    wanted |= set(default_days(connection))
    return [day for day in sorted(wanted) if create(connection, day)]


def drop(connection: Connection, day: date) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS {name_of(day)}"))


async def maintain(engine: AsyncEngine, ahead: int = AHEAD_DAYS,
                   today: date | None = None) -> list[date]:
    """One maintenance round (PostgreSQL; nothing on SQLite): the days created."""
    today = today or datetime.now(UTC).date()
    async with engine.begin() as connection:
        if not await connection.run_sync(partitioned):
            return []
        return await connection.run_sync(lambda c: ensure(c, today, ahead))

