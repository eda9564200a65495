"""Exporting search results as JSON Lines, CSV or Parquet, streamed with flat memory.

:func:`iter_rows` pages through the store with the search keyset and yields role-filtered
rows (:func:`modelbus_audit.views.event_dict`); :func:`stream_export` turns the pages into
the bytes of one of :data:`FORMATS` as they are produced (the API sends them on at once),
and :func:`write_export` writes that stream to a file, reporting progress after every page.

JSON Lines and CSV are written a page at a time. Parquet is written a row group at a time
(:data:`ROW_GROUP_ROWS` rows, collected as compact Arrow record batches, not dicts): each
group is compressed in a worker thread (the event loop keeps answering lookups), its bytes
leave as soon as it is written, and only the footer (a few hundred bytes per row group) is
kept until the end. In CSV and Parquet the payload is a JSON text column; Parquet keeps
numbers and times typed.
"""

from __future__ import annotations

import asyncio
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
#: Rows per Parquet row group: big enough to compress well, small enough to hold in memory.
ROW_GROUP_ROWS = 50_000
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


async def stream_export(
    pages: AsyncIterator[list[dict[str, Any]]], fmt: str, progress: Progress | None = None,
) -> AsyncIterator[bytes]:
    """The export of every page as ``fmt``, in chunks as they are produced."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {FORMATS}")
    total, first = 0, True
    parquet = _ParquetStream() if fmt == "parquet" else None
    async for rows in pages:
        if parquet is None:
            yield encode_text_page(fmt, rows, first)
        elif chunk := await parquet.add(rows):
            yield chunk
        first = False
        total += len(rows)
        if progress:
            progress(total)
    if fmt == "csv" and first:
        yield _csv([], header=True)
    if parquet is not None:
        yield await parquet.close()


async def write_export(
    pages: AsyncIterator[list[dict[str, Any]]], fmt: str, sink: IO[bytes],
    progress: Progress | None = None,
) -> int:
    """Write every page to ``sink`` as ``fmt``; return the number of rows written."""
    counted = _Counted(pages)
    async for chunk in stream_export(counted, fmt, progress):
        sink.write(chunk)
    return counted.rows


class _Counted:
    """Pages passed through, rows counted."""

    def __init__(self, pages: AsyncIterator[list[dict[str, Any]]]) -> None:
        self.pages, self.rows = pages, 0

    async def __aiter__(self) -> AsyncIterator[list[dict[str, Any]]]:
        async for rows in self.pages:
            self.rows += len(rows)
            yield rows


class _Buffer(io.RawIOBase):
    """The file a ParquetWriter writes to: bytes collect here until :meth:`drain`."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


class _ParquetStream:
    """Row groups of :data:`ROW_GROUP_ROWS` rows, each written and released as it fills."""

    def __init__(self) -> None:
        self.buffer = _Buffer()
        self.writer = pq.ParquetWriter(self.buffer, PARQUET_SCHEMA, compression="zstd")
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0

    async def add(self, rows: list[dict[str, Any]]) -> bytes:
        self.batches.append(_batch(rows))
        self.rows += len(rows)
        return await self._flush() if self.rows >= ROW_GROUP_ROWS else b""

    async def close(self) -> bytes:
        head = await self._flush()
        await asyncio.to_thread(self.writer.close)
        return head + self.buffer.drain()

    async def _flush(self) -> bytes:
        if self.batches:
            table = pa.Table.from_batches(self.batches, PARQUET_SCHEMA)
            self.batches, self.rows = [], 0
            await asyncio.to_thread(self.writer.write_table, table, ROW_GROUP_ROWS)
        return self.buffer.drain()


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


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = {}
    for name in EXPORT_COLUMNS:
        values = [row.get(name) for row in rows]
        if name in _TIME:
            values = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
        elif name == "payload":
            values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
        columns[name] = values
    return pa.RecordBatch.from_pydict(columns, schema=PARQUET_SCHEMA)
