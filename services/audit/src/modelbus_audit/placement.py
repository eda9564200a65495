"""Which records of a batch the audit store inserts, and under which row keys (the dedup and
conflict rules of :mod:`modelbus_audit.store`): a record whose identity is stored with the same
content and authenticity is dropped (an exact redelivery; also against rows stored before
revision 0003, keyed by their ``ce_id``); any other one is kept, flagged ``conflict`` when its
identity is stored with other content, under the first free row key of: its identity,
``<identity>@<topic:partition:offset>``, that plus ``@<body sha256>``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.flags import CONFLICT, UNAUTHENTICATED, flag_set, join_flags
from modelbus_audit.tables import audit_events

if TYPE_CHECKING:
    from modelbus_audit.record import AuditRecord

ID_LOOKUP_CHUNK = 500


async def placed(connection: AsyncConnection, records: list[AuditRecord]) -> list[AuditRecord]:
    """The records to insert, with their row keys and conflict flags (see module doc)."""
    held, legacy = await known(
        connection, sorted({r.identity_key for r in records}),
        sorted({r.ce_id for r in records if r.ce_id}))
    fresh: list[AuditRecord] = []
    for record in records:
        seen = held.setdefault(record.identity_key, [])
        mine = (record.body_sha256, record.unauthenticated)
        if mine in seen or stored_before_0003(record, legacy):
            continue
        conflict = bool(seen) if record.unauthenticated else any(not u for _, u in seen)
        seen.append(mine)
        flags = join_flags(*flag_set(record.flags), CONFLICT if conflict else None)
        if record.identity != record.identity_key or record.flags != flags:
            record = replace(record, identity=record.identity_key, flags=flags)
        fresh.append(record)
    # which row keys are stored: every first choice, and a row's other choices only when
    # its first is taken (rare: a conflict) — one lookup of batch size in the common case
    looked_up = [r.identity_key for r in fresh]
    taken = await stored_ids(connection, looked_up)
    looked = set(looked_up)
    placed = []
    for record in fresh:
        keys = (record.identity_key,)
        if record.identity_key in taken:
            keys = _row_keys(record)
            taken |= await stored_ids(connection, [c for c in keys if c not in looked])
            looked.update(keys)
        key = next(c for c in keys if c not in taken)
        taken.add(key)
        placed.append(record if key == record.event_id else replace(record, event_id=key))
    return placed

async def known(connection: AsyncConnection, identities: list[str],
                legacy_ids: list[str] = ()) -> tuple[dict, dict]:
    """(content hash, unauthenticated) of every stored row of each identity; and the
    content hashes of rows stored before revision 0003 (no identity: keyed by the
    ``event_id`` they had then, the ``ce_id``) among ``legacy_ids``."""
    found: dict[str, list[tuple[str | None, bool]]] = defaultdict(list)
    legacy: dict[str, set[str | None]] = defaultdict(set)
    ev = audit_events.c
    columns = (ev.identity, ev.event_id, ev.body_sha256, ev.flags)
    for start in range(0, len(identities), ID_LOOKUP_CHUNK):
        chunk = identities[start : start + ID_LOOKUP_CHUNK]
        for row in await connection.execute(select(*columns).where(ev.identity.in_(chunk))):
            unauthenticated = UNAUTHENTICATED in flag_set(row.flags)
            found[row.identity].append((row.body_sha256, unauthenticated))
    for start in range(0, len(legacy_ids), ID_LOOKUP_CHUNK):
        chunk = list(legacy_ids[start : start + ID_LOOKUP_CHUNK])
        query = select(*columns).where(ev.identity.is_(None), ev.event_id.in_(chunk))
        for row in await connection.execute(query):
            legacy[row.event_id].add(row.body_sha256)
    return dict(found), dict(legacy)

async def stored_ids(connection: AsyncConnection, event_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(event_ids), ID_LOOKUP_CHUNK):
        chunk = event_ids[start : start + ID_LOOKUP_CHUNK]
        result = await connection.execute(
            select(audit_events.c.event_id).where(audit_events.c.event_id.in_(chunk))
        )
        found.update(result.scalars())
    return found


def stored_before_0003(record: AuditRecord, legacy: dict[str, set[str | None]]) -> bool:
    """The same content stored before revision 0003, under its ``ce_id`` (a redelivery across
    the upgrade is not stored twice)."""
    return bool(record.ce_id and record.body_sha256
                and record.body_sha256 in legacy.get(record.ce_id, ()))


def _row_keys(record: AuditRecord) -> tuple[str, ...]:
    """Row keys for a record, in order of preference: its identity, then its log position."""
    from modelbus_audit.record import bounded_id  # writers only: reading needs no decoding

    at = f"{record.identity_key}@{record.topic}:{record.kafka_partition}:{record.kafka_offset}"
    return (record.identity_key, bounded_id(at), bounded_id(f"{at}@{record.body_sha256}"))
