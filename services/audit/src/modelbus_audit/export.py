"""Exporting search results as JSON Lines, CSV or Parquet, page by page (memory stays flat).

:func:`iter_rows` pages through the store with the search keyset and yields role-filtered
rows (:func:`modelbus_audit.views.event_dict`); :func:`write_export` writes them to a binary
sink in one of :data:`FORMATS` and reports progress after every page. In CSV and Parquet the
payload is a JSON text column; Parquet keeps numbers and times typed (pyarrow, one row group
per page).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelbus_audit.queries import Filters, cursor_of
from modelbus_audit.store import AuditStore
from modelbus_audit.views import EXPORT_COLUMNS, Role, event_dict

FORMATS = ("jsonl", "csv", "parquet")
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
PAGE = 1000
Progress = Callable[[int], None]

_INT = {"id", "kafka_partition", "kafka_offset", "part_id", "input_tokens", "output_tokens",
        "body_size", "chain_seq"}
_TIME = {"event_time", "purged_at"}
PARQUET_SCHEMA = pa.schema([
    pa.field(name, pa.int64() if name in _INT else pa.float64() if name == "cost_usd"
             else pa.timestamp("us", tz="UTC") if name in _TIME else pa.string())
    for name in EXPORT_COLUMNS
])


async def iter_rows(
    store: AuditStore, filters: Filters, role: Role, limit: int | None = None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of exported rows matching ``filters`` (at most ``limit`` rows in all)."""
    after, left = None, limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        events = await store.search(filters, size, after)
        if not events:
            return
        yield [event_dict(event, role) for event in events]
        after = cursor_of(events[-1])
        left = None if left is None else left - len(events)
        if len(events) < size:
            return


async def write_export(
    pages: AsyncIterator[list[dict[str, Any]]], fmt: str, sink: IO[bytes],
    progress: Progress | None = None,
) -> int:
    """Write every page to ``sink`` as ``fmt``; return the number of rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {FORMATS}")
    total, writer, first = 0, None, True
    async for rows in pages:
        if fmt in ("jsonl", "csv"):
            sink.write(encode_text_page(fmt, rows, first))
        else:
            writer = writer or pq.ParquetWriter(sink, PARQUET_SCHEMA, compression="zstd")
            writer.write_table(_table(rows))
        first = False
        total += len(rows)
        if progress:
            progress(total)
    if fmt == "csv" and first:
        sink.write(_csv([], header=True))
    if fmt == "parquet":
        writer = writer or pq.ParquetWriter(sink, PARQUET_SCHEMA, compression="zstd")
        writer.close()
    return total


def encode_text_page(fmt: str, rows: list[dict[str, Any]], first: bool) -> bytes:
    """One page as JSON Lines or CSV (with the header row when ``first``)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, default=str) + "\n" for r in rows).encode()
    return _csv(rows, header=first)


def _csv(rows: list[dict[str, Any]], header: bool) -> bytes:
    buffer = io.StringIO()
    out = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    if header:
        out.writeheader()
    for row in rows:
        out.writerow({k: _flat(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


def _flat(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = {}
    for name in EXPORT_COLUMNS:
        values = [row.get(name) for row in rows]
        if name in _TIME:
            values = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
        elif name == "payload":
            values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
        columns[name] = values
    return pa.Table.from_pydict(columns, schema=PARQUET_SCHEMA)
