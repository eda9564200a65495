"""The request's caller on every row: who asked (team, user) and the data class, so filters and
exports by team, user or data class find the results, responses and dead letters of a request
too, not only the request and its tasks (which are the only events that carry a caller).

At ingestion, before a batch is inserted, :func:`neighbours` reads the stored rows of the
batch's requests (one indexed ``request_id IN (...)`` query per chunk) and :func:`assign` sets
``req_team``, ``req_user`` and ``req_data_class`` on every new row:

- a request or task row (any flags) carries its own caller;
- any other row takes the caller of a *genuine* (unflagged) request or task row of the same
  (tenant, request id), from the batch or the store; a row without a tenant (undecodable) or
  whose request is not stored yet gets none;
- when the request arrives after some of its rows (topics are consumed independently), those
  stored rows are returned as fixes and updated in the same transaction.

The columns are derived from hashed rows and kept outside the hash (the backfill of revision
0004 changes no row hash): a reader who doubts them re-derives them from the request row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.tables import audit_events as ev

CHUNK = 500
CALLER_KINDS = frozenset({"request", "task"})
#: What :func:`neighbours` reads of each stored row of a request.
NEIGHBOUR_COLUMNS = (ev.c.id, ev.c.tenant, ev.c.request_id, ev.c.kind, ev.c.flags,
                     ev.c.team, ev.c.caller_user, ev.c.data_class, ev.c.req_team,
                     ev.c.req_user, ev.c.req_data_class, ev.c.provider, ev.c.model,
                     ev.c.event_time, ev.c.input_tokens, ev.c.output_tokens, ev.c.cost_usd)

Caller = tuple[str | None, str | None, str | None]  # team, user, data class
Key = tuple[str, str]  # tenant, request id


@dataclass(frozen=True)
class Fix:
    """A stored row that learns its request's caller from this batch."""

    row: dict[str, Any]
    caller: Caller


def key_of(row: dict[str, Any]) -> Key | None:
    tenant, request_id = row.get("tenant"), row.get("request_id")
    return (tenant, request_id) if tenant and request_id else None


def own_caller(row: dict[str, Any]) -> Caller | None:
    if row.get("kind") not in CALLER_KINDS:
        return None
    caller = (row.get("team"), row.get("caller_user"), row.get("data_class"))
    return caller if any(caller) else None


async def neighbours(connection: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict]:
    """The stored rows of the requests ``rows`` belong to."""
    ids = sorted({key[1] for key in map(key_of, rows) if key})
    found: list[dict] = []
    for start in range(0, len(ids), CHUNK):
        query = select(*NEIGHBOUR_COLUMNS).where(ev.c.request_id.in_(ids[start:start + CHUNK]))
        found.extend(dict(r) for r in (await connection.execute(query)).mappings())
    return found


def assign(rows: list[dict[str, Any]], stored: list[dict[str, Any]]) -> list[Fix]:
    """Set the caller columns of every new row; return the stored rows to update."""
    known: dict[Key, Caller] = {}
    for row in stored:
        caller = own_caller(row)
        if caller and not row["flags"] and key_of(row):
            known.setdefault(key_of(row), caller)
    learned: dict[Key, Caller] = {}
    for row in rows:
        caller, key = own_caller(row), key_of(row)
        if caller and not row.get("flags") and key and key not in known:
            known[key] = learned[key] = caller
    for row in rows:
        caller = own_caller(row) or known.get(key_of(row)) or (None, None, None)
        row["req_team"], row["req_user"], row["req_data_class"] = caller
    return [Fix(row, learned[key]) for row in stored
            if (key := key_of(row)) in learned and not own_caller(row)
            and not any((row["req_team"], row["req_user"], row["req_data_class"]))]


async def apply(connection: AsyncConnection, fixes: Iterable[Fix]) -> None:
    params = [{"fix_id": f.row["id"], "b_team": f.caller[0], "b_user": f.caller[1],
               "b_data_class": f.caller[2]} for f in fixes]
    if params:
        await connection.execute(
            update(ev).where(ev.c.id == bindparam("fix_id")).values(
                req_team=bindparam("b_team"), req_user=bindparam("b_user"),
                req_data_class=bindparam("b_data_class")),
            params)
