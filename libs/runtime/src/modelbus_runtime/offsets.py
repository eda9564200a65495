"""Per-partition offset tracking for concurrent, out-of-order processing.

Messages of a partition may finish in any order when many are in flight; the committable
offset is one past the highest offset below which *every* message has finished. That keeps
at-least-once delivery: a crash replays only what had not fully completed.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Hashable


class PartitionOffsets:
    """Offsets in flight for one partition."""

    __slots__ = ("_committable", "_done", "_last_committed", "_pending")

    def __init__(self) -> None:
        self._pending: list[int] = []  # min-heap of offsets started and not yet retired
        self._done: set[int] = set()
        self._committable: int | None = None
        self._last_committed: int | None = None

    def start(self, offset: int) -> None:
        heapq.heappush(self._pending, offset)

    def finish(self, offset: int) -> None:
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            retired = heapq.heappop(self._pending)
            self._done.discard(retired)
            self._committable = retired + 1

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def take_commit(self) -> int | None:
        """The offset to commit now, or None when nothing new has completed."""
        if self._committable is None or self._committable == self._last_committed:
            return None
        self._last_committed = self._committable
        return self._committable


class OffsetTracker:
    """Offsets in flight for every assigned partition."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, PartitionOffsets] = defaultdict(PartitionOffsets)

    def start(self, tp: Hashable, offset: int) -> None:
        self._parts[tp].start(offset)

    def finish(self, tp: Hashable, offset: int) -> None:
        part = self._parts.get(tp)
        if part is not None:
            part.finish(offset)

    def in_flight(self, tp: Hashable | None = None) -> int:
        if tp is not None:
            part = self._parts.get(tp)
            return part.in_flight if part else 0
        return sum(p.in_flight for p in self._parts.values())

    def take_commits(self, only: set | None = None) -> dict[Hashable, int]:
        out = {}
        for tp, part in self._parts.items():
            if only is not None and tp not in only:
                continue
            offset = part.take_commit()
            if offset is not None:
                out[tp] = offset
        return out

    def forget(self, tps: set) -> None:
        for tp in tps:
            self._parts.pop(tp, None)
