"""Coalesces single-key Redis commands issued by many concurrent tasks into one pipeline.

With a thousand provider calls in flight, one command per task means a thousand round trips
and connections competing for the event loop. Commands issued in the same loop iteration
are queued and sent together as one pipeline (one round trip, one connection); each caller
still awaits its own reply or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class PipelineCoalescer:
    def __init__(self, redis, *, max_batch: int = 512) -> None:
        self.redis = redis
        self.max_batch = max_batch
        self._pending: list[tuple[Callable, asyncio.Future]] = []
        self._scheduled = False

    async def run(self, add: Callable) -> object:
        """``add(pipe)`` queues one command on the pipeline; returns that command's reply."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((add, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            asyncio.ensure_future(self._flush(batch))

    async def _flush(self, batch: list[tuple[Callable, asyncio.Future]]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for add, _ in batch:
                add(pipe)
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
