"""The archive's row format: every column of ``audit_events`` as an Arrow/Parquet column.

An archived file keeps every stored column, the hash-chain columns included, so a day taken
out of the live store is still the evidence it was. Integers are int64, ``cost_usd`` float64,
times ``timestamp[us, UTC]`` (SQLite's naive values are UTC), ``payload`` and ``headers`` the
JSON text as stored (read with :data:`COLUMNS`, which casts them to text: decoding and encoding
them again was half the archive's time), everything else strings. The same format carries live
rows into DuckDB (:mod:`modelbus_audit.query`), so archived and live rows union by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, Text, cast

from modelbus_audit.stored import as_utc
from modelbus_audit.tables import audit_events


def _arrow_type(column) -> pa.DataType:
    kind = column.type
    if isinstance(kind, BigInteger | Integer):
        return pa.int64()
    if isinstance(kind, Float):
        return pa.float64()
    if isinstance(kind, DateTime):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


SCHEMA = pa.schema([pa.field(c.name, _arrow_type(c)) for c in audit_events.columns])
_TIMES = tuple(c.name for c in audit_events.columns if isinstance(c.type, DateTime))
#: What to select for :func:`batch`: every column, the JSON ones as their stored text.
COLUMNS = tuple(cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c
                for c in audit_events.columns)


def batch(rows: Iterable[Mapping[str, Any]]) -> pa.RecordBatch:
    """Rows selected as :data:`COLUMNS` (mappings of column → value) as one record batch of
    :data:`SCHEMA`."""
    rows = list(rows)
    columns: dict[str, list[Any]] = {}
    for name in SCHEMA.names:
        values = [row[name] for row in rows]
        if name in _TIMES:
            values = [as_utc(v) for v in values]
        columns[name] = values
    return pa.RecordBatch.from_pydict(columns, schema=SCHEMA)
