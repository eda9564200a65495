"""How often a consumer asks the broker for records: paced, and adapting to idleness.

* ``min_fetch_interval_ms``: a sink off the request path fetches at most that often, so it
  gets everything since its last fetch in one batch instead of a fetch (and a store
  transaction) per record or two as they trickle in.
* Idle adaptation: a consumer that fetched nothing and had nothing in flight for
  ``idle_after_s`` switches its broker fetch wait to ``idle_fetch_max_wait_ms`` and its
  local poll to :data:`IDLE_POLL_MS`; the first record fetched switches both back. At rest
  a service then sends a few fetches a second instead of one per ``fetch_max_wait_ms``,
  which is most of what an idle stack costs the broker and itself. A busy consumer (one
  request after another, as in a benchmark or under load) never becomes idle; the first
  record after a quiet spell waits up to one idle fetch on each hop it reaches idle.
* Deep idle: after ``deep_idle_after_s`` of the same quiet the wait becomes
  ``deep_idle_fetch_max_wait_ms`` — a stack at rest for minutes then costs the local broker
  (whose cost grows with fetches times partitions named) a fraction of a core less, and the
  first request after such a spell pays up to one deep wait per hop. A broker that answers
  a waiting fetch as soon as data arrives (Apache Kafka) makes every long wait free.
"""

from __future__ import annotations

import asyncio
import time

#: the local poll while work is expected: commits of finished work go out at this pace
BUSY_POLL_MS = 100
#: the local poll when idle (the broker's answer ends it as soon as records arrive)
IDLE_POLL_MS = 1000


class FetchPacer:
    """Decides each fetch's waits; ``client`` is the aiokafka consumer whose fetch wait
    adapts (aiokafka has no public setter: the fetcher reads ``_fetch_max_wait_ms`` for
    every fetch request it builds)."""

    def __init__(self, client, *, busy_wait_ms: int, idle_wait_ms: int, idle_after_s: float,
                 min_interval_ms: int = 0, deep_wait_ms: int = 0,
                 deep_after_s: float = 0) -> None:
        self.client = client
        self.busy_wait_ms = busy_wait_ms
        self.idle_wait_ms = max(idle_wait_ms, busy_wait_ms)
        self.idle_after_s = idle_after_s
        self.deep_wait_ms = max(deep_wait_ms, self.idle_wait_ms)
        self.deep_after_s = max(deep_after_s, idle_after_s) if deep_after_s else 0
        self.min_interval_s = min_interval_ms / 1000
        self.idle = False
        self._wait_ms = busy_wait_ms
        self._last_busy = time.monotonic()
        self._last_fetch = 0.0

    @classmethod
    def from_settings(cls, client, settings, *, busy_wait_ms: int | None = None,
                      idle_wait_ms: int | None = None, min_interval_ms: int = 0) -> FetchPacer:
        """Paced by a service's :class:`~modelbus_runtime.settings.RuntimeSettings`, with
        its own busy or idle wait where given."""
        return cls(client, busy_wait_ms=busy_wait_ms or settings.fetch_max_wait_ms,
                   idle_wait_ms=idle_wait_ms or settings.idle_fetch_max_wait_ms,
                   idle_after_s=settings.idle_after_s, min_interval_ms=min_interval_ms,
                   deep_wait_ms=settings.deep_idle_fetch_max_wait_ms,
                   deep_after_s=settings.deep_idle_after_s)

    @property
    def wait_ms(self) -> int:
        """The broker fetch wait in force."""
        return self._wait_ms

    async def before_fetch(self) -> int:
        """Sleep out ``min_interval_ms`` if needed; returns the local poll timeout (ms)."""
        if self.min_interval_s:
            wait = self._last_fetch + self.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_fetch = time.monotonic()
        return IDLE_POLL_MS if self.idle else BUSY_POLL_MS

    def after_fetch(self, fetched: bool, in_flight: int) -> None:
        """Record whether the fetch brought records and how much work is in flight."""
        now = time.monotonic()
        if fetched or in_flight:
            self._last_busy = now
        quiet = now - self._last_busy
        self.idle = self.idle_after_s > 0 and quiet >= self.idle_after_s
        wait = self.busy_wait_ms
        if self.idle:
            deep = self.deep_after_s > 0 and quiet >= self.deep_after_s
            wait = self.deep_wait_ms if deep else self.idle_wait_ms
        if wait != self._wait_ms:
            self._wait_ms = wait
            fetcher = getattr(self.client, "_fetcher", None)
            if fetcher is not None:
                fetcher._fetch_max_wait_ms = wait
