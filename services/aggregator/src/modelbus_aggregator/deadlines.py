"""The deadline timer: scans the stored deadlines and fires the ones that are due.

Deadlines live in Redis (a sorted set, see :mod:`state`), not in process memory, so a
restarted or different aggregator instance fires them: nothing hangs. Every instance
scans; the response claim makes sure only one of them answers. Entries name a request by
its (tenant, request id) scope, as the fan-in store does. A due entry stays in the
set until the request is answered, so a failed attempt is retried on the next tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from modelbus_runtime.errors import TransientInfraError

from modelbus_aggregator.state import FanInStore

log = logging.getLogger(__name__)


class DeadlineScheduler:
    def __init__(self, store: FanInStore, on_due: Callable[[str], Awaitable[None]],
                 tick_s: float = 0.05, batch: int = 100) -> None:
        self.store = store
        self.on_due = on_due
        self.tick_s = tick_s
        self.batch = batch
        self._task: asyncio.Task | None = None

    async def tick(self) -> int:
        """Fire every deadline due now; return how many were due."""
        due = await self.store.due(int(time.time() * 1000), self.batch)
        for scope in due:
            try:
                await self.on_due(scope)
            except TransientInfraError as exc:
                log.warning("deadline of %s not handled yet: %s", scope, exc)
            except Exception:
                log.exception("deadline handler failed for %s", scope)
                await self.store.forget_deadline(scope)
        return len(due)

    async def run(self) -> None:
        while True:
            try:
                busy = await self.tick()
            except TransientInfraError as exc:
                log.warning("deadline scan failed: %s", exc)
                busy = 0
            if busy < self.batch:
                await asyncio.sleep(self.tick_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="aggregator-deadlines")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
