"""The deadline timer: scans the stored deadlines and fires the ones that are due.

Deadlines live in Redis (a sorted set, see :mod:`state`), not in process memory, so a
restarted or different aggregator instance fires them: nothing hangs. Every instance
scans; the response claim makes sure only one of them answers. Entries name a request by
its (tenant, request id) scope, as the fan-in store does. A due entry stays in the
set until the request is answered, so a failed attempt is retried on the next tick.

Scans are paced by the deadlines themselves: each scan also reads the earliest due time
stored, and the timer sleeps until then — at least ``tick_s``, at most ``idle_tick_s`` — or
until a deadline is scheduled on this instance that is due sooner (:meth:`wake`). An idle
aggregator scans once per ``idle_tick_s`` instead of every ``tick_s``; a deadline stored by
another instance that then died is fired within ``idle_tick_s`` of its due time. While
Redis is unreachable, scans are retried every ``idle_tick_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from modelbus_runtime.errors import TransientInfraError

from modelbus_aggregator.state import FanInStore

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class DeadlineScheduler:
    def __init__(self, store: FanInStore, on_due: Callable[[str], Awaitable[None]],
                 tick_s: float = 0.05, batch: int = 100, idle_tick_s: float = 1.0) -> None:
        self.store = store
        self.on_due = on_due
        self.tick_s = tick_s
        self.idle_tick_s = max(idle_tick_s, tick_s)
        self.batch = batch
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._next_scan_ms = 0

    def wake(self, due_ms: int) -> None:
        """A deadline due at ``due_ms`` was stored: scan by then."""
        if due_ms < self._next_scan_ms:
            self._wake.set()

    async def tick(self) -> int:
        """Fire every deadline due now; return how many were due."""
        return (await self._scan())[0]

    async def _scan(self) -> tuple[int, int | None]:
        due, next_ms = await self.store.due_and_next(_now_ms(), self.batch)
        for scope in due:
            try:
                await self.on_due(scope)
            except TransientInfraError as exc:
                log.warning("deadline of %s not handled yet: %s", scope, exc)
            except Exception:
                log.exception("deadline handler failed for %s", scope)
                await self.store.forget_deadline(scope)
        return len(due), next_ms

    def _pause_s(self, next_ms: int | None) -> float:
        if next_ms is None:
            return self.idle_tick_s
        return min(max((next_ms - _now_ms()) / 1000, self.tick_s), self.idle_tick_s)

    async def run(self) -> None:
        while True:
            self._wake.clear()  # a deadline stored during the scan wakes the next wait
            self._next_scan_ms = 1 << 62  # ... whenever it is due
            try:
                busy, next_ms = await self._scan()
            except TransientInfraError as exc:
                log.warning("deadline scan failed: %s", exc)
                busy, next_ms = 0, None
            if busy >= self.batch:
                continue
            pause = self._pause_s(next_ms)
            self._next_scan_ms = _now_ms() + int(pause * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    def start(self) -> None:
        self.store.on_scheduled = self.wake
        self._task = asyncio.create_task(self.run(), name="aggregator-deadlines")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
