"""The deadline timer's pacing: it sleeps until the earliest stored deadline (at most its idle
tick) and a deadline scheduled on this instance wakes it, on real Redis."""

from __future__ import annotations

import asyncio
import time

from modelbus_aggregator.deadlines import DeadlineScheduler
from modelbus_aggregator.state import FanInStore


class CountingStore(FanInStore):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scans = 0

    async def due_and_next(self, now_ms: int, limit: int = 100):
        self.scans += 1
        return await super().due_and_next(now_ms, limit)


async def _run_for(timer: DeadlineScheduler, seconds: float) -> None:
    timer.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await timer.stop()


async def test_an_idle_timer_scans_once_per_idle_tick(redis_client, prefix):
    store = CountingStore(redis_client, prefix)

    async def never(scope: str) -> None:
        raise AssertionError(f"nothing is due, yet {scope} fired")

    timer = DeadlineScheduler(store, never, tick_s=0.02, idle_tick_s=0.5)
    await _run_for(timer, 1.2)
    assert 1 <= store.scans <= 4  # every 20 ms it would have been about 60


async def test_a_deadline_scheduled_here_wakes_the_timer_and_fires_when_due(redis_client,
                                                                           prefix):
    store = CountingStore(redis_client, prefix)
    fired: dict[str, float] = {}

    async def on_due(scope: str) -> None:
        fired.setdefault(scope, time.time())
        await store.forget_deadline(scope)

    timer = DeadlineScheduler(store, on_due, tick_s=0.02, idle_tick_s=30.0)
    timer.start()
    try:
        await asyncio.sleep(0.2)  # the timer now sleeps its idle tick: nothing is stored
        due_at = time.time() + 0.3
        await store.schedule("4:acme:r-1", int(due_at * 1000))
        for _ in range(300):
            if fired:
                break
            await asyncio.sleep(0.02)
    finally:
        await timer.stop()
    assert "4:acme:r-1" in fired, "a 30 s idle sleep was not cut short by the new deadline"
    assert fired["4:acme:r-1"] >= due_at - 0.001, "fired before it was due"


async def test_a_stored_deadline_is_fired_without_a_wake(redis_client, prefix):
    """One stored by another instance: the timer finds it on its next scan and sleeps
    until it is due (not a whole idle tick past it)."""
    writer, reader = FanInStore(redis_client, prefix), CountingStore(redis_client, prefix)
    fired = []

    async def on_due(scope: str) -> None:
        fired.append(scope)
        await reader.forget_deadline(scope)

    await writer.schedule("4:acme:r-2", int((time.time() + 0.4) * 1000))
    timer = DeadlineScheduler(reader, on_due, tick_s=0.02, idle_tick_s=30.0)
    await _run_for(timer, 2.0)
    assert fired == ["4:acme:r-2"]
