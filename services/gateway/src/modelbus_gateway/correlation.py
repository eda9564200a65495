"""Calls waiting for their response, matched by (tenant, request id); bounded in memory.

Entries are keyed by the request's :func:`~modelbus_schemas.identity.scoped_id` — the
tenant is the caller's, from its API key — and a response resolves the entry of *its*
tenant and request id only, so a response for another tenant's same request id never
completes a call. A call :meth:`join`\\ s before publishing and :meth:`leave`\\ s when it
has its answer or gives up; the entry goes when its last waiter leaves (an idempotent retry
may wait on the same entry). At ``capacity`` entries a new request is refused with
:class:`PendingFull`, so a flood of slow calls cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio

from modelbus_schemas import ResponseEvent
from modelbus_schemas.identity import scoped_id


def scope_of(response: ResponseEvent) -> str:
    """The (tenant, request id) a response answers."""
    return scoped_id(response.tenant, response.request_id)


class PendingFull(Exception):
    """No room for another call awaiting its response."""


class PendingReplies:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[str, list] = {}  # scoped request id → [future, waiters]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, scope: str) -> bool:
        return scope in self._entries

    def join(self, scope: str) -> asyncio.Future[ResponseEvent]:
        """Wait for the response of ``scope`` (``scoped_id(tenant, request id)``)."""
        entry = self._entries.get(scope)
        if entry is None:
            if len(self._entries) >= self.capacity:
                raise PendingFull(f"{self.capacity} calls are already awaiting responses")
            entry = self._entries[scope] = [asyncio.get_running_loop().create_future(), 0]
        entry[1] += 1
        return entry[0]

    def leave(self, scope: str) -> None:
        entry = self._entries.get(scope)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._entries[scope]
            if not entry[0].done():
                entry[0].cancel()

    def resolve(self, response: ResponseEvent) -> bool:
        """Hand a response to its waiters; False when nobody waits for it (any more)."""
        entry = self._entries.get(scope_of(response))
        if entry is None or entry[0].done():
            return False
        entry[0].set_result(response)
        return True
