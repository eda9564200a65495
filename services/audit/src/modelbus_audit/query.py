"""``modelbus audit query "<SQL>"``: SQL over the archive and the live store together (DuckDB).

DuckDB (imported here only) gets three relations, all with every column of ``audit_events``
(:mod:`modelbus_audit.archive_format`):

* ``archived_events`` — the Parquet files of the archived days, read from the bucket with
  boto3 and pyarrow (DuckDB's own S3 reader, ``httpfs``, is an extension it would download
  at run time, which a closed network cannot do); each file is checked against its
  manifest's SHA-256 first, and a file that does not match stops the query;
* ``live_events`` — the rows still in the live store, streamed in pages;
* ``events`` — both, ``UNION ALL BY NAME`` (a day is in one or the other: it leaves the live
  store in the transaction that records its archive).

``since`` / ``until`` bound what is loaded (archived days by their date, live rows by
``event_time``); without them everything is loaded into the DuckDB process's memory, so
bound broad questions over years of archive by time.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from modelbus_audit import archive_format
from modelbus_audit.archive_target import ArchiveTarget
from modelbus_audit.tables import audit_archives as ar
from modelbus_audit.tables import audit_events as ev

FETCH_ROWS = 5_000


class ArchiveQueryError(RuntimeError):
    """An archived file is missing or no longer matches its manifest."""


async def archived_table(engine: AsyncEngine, target: ArchiveTarget | None,
                         since: datetime | None = None,
                         until: datetime | None = None) -> pa.Table:
    """The archived rows of the days in [since, until) as one Arrow table."""
    query = select(ar.c.day, ar.c.manifest_key, ar.c.manifest_sha256).order_by(ar.c.seq)
    if since is not None:
        query = query.where(ar.c.day >= since.date())
    if until is not None:
        query = query.where(ar.c.day <= until.date())
    async with engine.connect() as connection:
        manifests = (await connection.execute(query)).all()
    if manifests and target is None:
        raise ArchiveQueryError("the store has archived days but no archive bucket is set "
                                "(MODELBUS_AUDIT_ARCHIVE_BUCKET)")
    tables = [archive_format.SCHEMA.empty_table()]
    for _day, key, sha in manifests:
        manifest = json.loads(await _checked(target, key, sha))
        for entry in manifest["files"]:
            data = await _checked(target, entry["key"], entry["sha256"])
            tables.append(pq.read_table(io.BytesIO(data), schema=archive_format.SCHEMA))
    return pa.concat_tables(tables)


async def _checked(target: ArchiveTarget, key: str, sha256: str) -> bytes:
    data = await target.get(key)
    if data is None:
        raise ArchiveQueryError(f"archived object {key} is missing")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArchiveQueryError(f"archived object {key} does not match its manifest "
                                "(run verify --archive)")
    return data


async def live_table(engine: AsyncEngine, since: datetime | None = None,
                     until: datetime | None = None) -> pa.Table:
    """The live store's rows in [since, until) as one Arrow table."""
    query = select(*archive_format.COLUMNS).order_by(ev.c.event_time, ev.c.id)
    if since is not None:
        query = query.where(ev.c.event_time >= since)
    if until is not None:
        query = query.where(ev.c.event_time < until)
    batches = []
    async with engine.connect() as connection:
        result = await connection.stream(query.execution_options(yield_per=FETCH_ROWS))
        async for part in result.mappings().partitions(FETCH_ROWS):
            batches.append(archive_format.batch(part))
    return pa.Table.from_batches(batches, archive_format.SCHEMA)


async def run_query(engine: AsyncEngine, target: ArchiveTarget | None, sql: str,
                    since: datetime | None = None, until: datetime | None = None,
                    ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over ``events`` / ``archived_events`` / ``live_events``: (columns, rows)."""
    archived = await archived_table(engine, target, since, until)
    live = await live_table(engine, since, until)
    return sql_over(archived, live, sql)


def sql_over(archived: pa.Table, live: pa.Table, sql: str
             ) -> tuple[list[str], list[tuple[Any, ...]]]:
    import duckdb

    with duckdb.connect() as con:
        con.register("archived_events", archived)
        con.register("live_events", live)
        con.execute("CREATE VIEW events AS SELECT * FROM archived_events "
                    "UNION ALL BY NAME SELECT * FROM live_events")
        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            raise ValueError(f"query failed: {exc}") from exc
        columns = [d[0] for d in cursor.description or ()]
        return columns, cursor.fetchall()


def plain(value: Any) -> Any:
    """A result value as JSON can carry it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def as_dicts(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
