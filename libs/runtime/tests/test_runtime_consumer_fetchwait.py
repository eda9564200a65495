"""The consumer's fetch pacing (modelbus_runtime.fetchwait): the broker fetch wait goes long
only after a quiet spell with nothing in flight, and back to short on the first record."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from modelbus_runtime.fetchwait import BUSY_POLL_MS, IDLE_POLL_MS, FetchPacer


def pacer(idle_after_s: float = 0.05) -> tuple[FetchPacer, SimpleNamespace]:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=25)
    client = SimpleNamespace(_fetcher=fetcher)
    return FetchPacer(client, busy_wait_ms=25, idle_wait_ms=250,
                      idle_after_s=idle_after_s), fetcher


async def test_runtime_fetch_wait_goes_long_after_a_quiet_spell_and_back_on_a_record():
    paced, fetcher = pacer()
    assert await paced.before_fetch() == BUSY_POLL_MS
    paced.after_fetch(fetched=False, in_flight=0)
    assert fetcher._fetch_max_wait_ms == 25  # not quiet for long enough yet
    await asyncio.sleep(0.06)
    paced.after_fetch(fetched=False, in_flight=0)
    assert (fetcher._fetch_max_wait_ms, await paced.before_fetch()) == (250, IDLE_POLL_MS)
    paced.after_fetch(fetched=True, in_flight=0)
    assert (fetcher._fetch_max_wait_ms, await paced.before_fetch()) == (25, BUSY_POLL_MS)


async def test_runtime_fetch_wait_stays_short_while_work_is_in_flight():
    paced, fetcher = pacer()
    await asyncio.sleep(0.06)
    paced.after_fetch(fetched=False, in_flight=3)
    await asyncio.sleep(0.06)
    paced.after_fetch(fetched=False, in_flight=1)
    assert fetcher._fetch_max_wait_ms == 25


async def test_runtime_fetch_wait_never_idles_when_disabled():
    paced, fetcher = pacer(idle_after_s=0)
    await asyncio.sleep(0.02)
    paced.after_fetch(fetched=False, in_flight=0)
    assert fetcher._fetch_max_wait_ms == 25


async def test_runtime_min_fetch_interval_spaces_fetches():
    paced = FetchPacer(SimpleNamespace(), busy_wait_ms=25, idle_wait_ms=250,
                       idle_after_s=1.0, min_interval_ms=100)
    await paced.before_fetch()
    started = time.monotonic()
    await paced.before_fetch()
    assert time.monotonic() - started >= 0.09


async def test_runtime_fetch_wait_goes_deeper_after_a_long_quiet_spell():
    fetcher = SimpleNamespace(_fetch_max_wait_ms=25)
    paced = FetchPacer(SimpleNamespace(_fetcher=fetcher), busy_wait_ms=25, idle_wait_ms=250,
                       idle_after_s=0.03, deep_wait_ms=1000, deep_after_s=0.1)
    await asyncio.sleep(0.05)
    paced.after_fetch(fetched=False, in_flight=0)
    assert (fetcher._fetch_max_wait_ms, paced.idle) == (250, True)
    await asyncio.sleep(0.07)
    paced.after_fetch(fetched=False, in_flight=0)
    assert (fetcher._fetch_max_wait_ms, paced.wait_ms, paced.idle) == (1000, 1000, True)
    paced.after_fetch(fetched=True, in_flight=0)
    assert (fetcher._fetch_max_wait_ms, paced.idle) == (25, False)
