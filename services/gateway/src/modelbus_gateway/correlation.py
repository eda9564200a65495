"""Calls waiting for their response, matched by request id; bounded in memory.

A call :meth:`join`\\ s the request id before publishing and :meth:`leave`\\ s it when it has
its answer or gives up; the entry goes when its last waiter leaves (an idempotent retry
may wait on the same entry). At ``capacity`` entries a new request id is refused with
:class:`PendingFull`, so a flood of slow calls cannot grow memory without bound.
"""

from __future__ import annotations

import asyncio

from modelbus_schemas import ResponseEvent


class PendingFull(Exception):
    """No room for another call awaiting its response."""


class PendingReplies:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[str, list] = {}  # request id → [future, waiters]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._entries

    def join(self, request_id: str) -> asyncio.Future[ResponseEvent]:
        entry = self._entries.get(request_id)
        if entry is None:
            if len(self._entries) >= self.capacity:
                raise PendingFull(f"{self.capacity} calls are already awaiting responses")
            entry = self._entries[request_id] = [asyncio.get_running_loop().create_future(), 0]
        entry[1] += 1
        return entry[0]

    def leave(self, request_id: str) -> None:
        entry = self._entries.get(request_id)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._entries[request_id]
            if not entry[0].done():
                entry[0].cancel()

    def resolve(self, response: ResponseEvent) -> bool:
        """Hand a response to its waiters; False when nobody waits for it (any more)."""
        entry = self._entries.get(response.request_id)
        if entry is None or entry[0].done():
            return False
        entry[0].set_result(response)
        return True
