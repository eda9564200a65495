"""The handler tasks a consumer has in flight, by partition, and bounded waits for them.

:class:`EventConsumer <modelbus_runtime.consumer.EventConsumer>` runs each record in its own
task. This module keeps which partition each task belongs to and the last task of each
ordering key (a record waits for the previous one with its key), so a revocation can wait
for, then cancel, exactly the work of the partitions it takes away, and a stop can do the
same for everything, each within its own bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Hashable

log = logging.getLogger(__name__)

#: how long cancelled tasks get to unwind before a bounded wait gives up on them (a task
#: that ignores cancellation is not waited for longer)
CANCEL_GRACE_S = 0.5


class InFlight:
    """Handler tasks by partition, and the last task of each ordering key."""

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task, frozenset[Hashable]] = {}
        self._key_tails: dict[bytes, asyncio.Task] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def previous(self, key: bytes | None) -> asyncio.Task | None:
        """The task a new record with ``key`` must wait for, if any."""
        return self._key_tails.get(key) if key else None

    def add(self, task: asyncio.Task, partitions: set, key: bytes | None = None) -> None:
        """Track ``task``, the work of ``partitions`` (one record's, or a whole batch's)."""
        self._tasks[task] = frozenset(partitions)
        if key:
            self._key_tails[key] = task
        task.add_done_callback(lambda t: self._on_done(t, key))

    def _on_done(self, task: asyncio.Task, key: bytes | None) -> None:
        self._tasks.pop(task, None)
        if key and self._key_tails.get(key) is task:
            del self._key_tails[key]

    def of(self, partitions: set | None = None) -> set[asyncio.Task]:
        """The tasks of ``partitions`` (all of them when None)."""
        if partitions is None:
            return set(self._tasks)
        return {task for task, tps in self._tasks.items() if not tps.isdisjoint(partitions)}


async def wait_previous(previous: asyncio.Task | None) -> None:
    """Wait for the previous task of a key; being cancelled meanwhile does not cancel it
    (it may belong to a partition this consumer keeps)."""
    if previous is not None and not previous.done():
        await asyncio.wait({previous})


async def finish_or_cancel(tasks: set[asyncio.Task], deadline: float, what: str,
                           grace: float = CANCEL_GRACE_S) -> int:
    """Wait for ``tasks`` until ``deadline``, then cancel the unfinished ones and give them
    up to ``grace`` seconds to unwind. Returns how many were cancelled."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
    if not pending:
        return 0
    log.warning("drain bound passed: cancelling %s (%d tasks); uncommitted work is "
                "redelivered to the next owner", what, len(pending))
    for task in pending:
        task.cancel()
    _, stuck = await asyncio.wait(pending, timeout=grace)
    if stuck:
        log.warning("%d cancelled tasks (%s) did not unwind within %.1fs; not waited for",
                    len(stuck), what, grace)
    return len(pending)


async def finish_by(step: Awaitable[None], deadline: float, what: str) -> None:
    """Await ``step`` until ``deadline``; past it, give it up (cancelled) with a warning."""
    try:
        await asyncio.wait_for(step, timeout=max(0.01, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("stop bound passed during %s; given up", what)
