"""Background rounds of the audit service (retention, archive): run now, then every
interval until stopped; a failed round is logged and the next one catches up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(interval_s: float, stop: asyncio.Event, round_: Callable[[], Awaitable[None]],
                what: str) -> None:
    """Await ``round_()`` now and every ``interval_s`` until ``stop`` is set."""
    while not stop.is_set():
        try:
            await round_()
        except Exception as exc:  # noqa: BLE001 - a failed round must not stop the service
            log.warning("%s failed, retrying next round: %s", what, exc)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
