"""SIGKILL of each service in the middle of load, then restart: nothing lost, no duplicate
responses, lineage complete, duplicate provider calls bounded by the calls in flight."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from modelbus_testing.simulator import (
    calls_in_flight,
    calls_when_quiet,
    provider_calls,
    simulate,
)

from tests.faults.ledger import Recorder, check_lineage, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

N, RATE = 200, 50.0


@pytest.mark.parametrize("victim", ["router", "worker-openai", "aggregator", "audit"])
async def test_sigkill_mid_load_loses_nothing(fault_stack, record_report, victim):
    stack = fault_stack
    simulate(stack, "gpt-4o-mini", latency_ms=100)
    run = f"kill-{victim}-{uuid.uuid4().hex[:6]}"
    ids = [f"{run}-{i}" for i in range(N)]
    rec = Recorder(stack.bootstrap)
    await rec.start()
    load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, RATE))
    await asyncio.sleep(N / RATE / 2)
    at_kill, unsaved = [], []

    def count_unsaved() -> None:
        """With the killed worker gone and none started yet: the calls it began whose
        output it had not saved — exactly the calls its redelivered tasks must make again."""
        if victim.startswith("worker-"):
            started = calls_when_quiet(stack)
            saved = count_keys(stack.redis_url, f"mb:worker:out:*{run}-*")
            unsaved.append(started - saved)

    await asyncio.to_thread(stack.restart, victim, kill=True,
                            before_stop=lambda: at_kill.append(calls_in_flight(stack)),
                            after_stop=count_unsaved)
    await load
    await rec.wait(ids, timeout=90)
    await rec.stop()
    report = tally(f"SIGKILL {victim} mid-load", ids, rec)
    report.provider_calls = provider_calls(stack)
    await check_lineage(stack.database_url, ids, rec, report)
    report.notes.append(f"{at_kill[0]} provider calls in flight at the kill")
    if unsaved:
        report.notes.append(f"{unsaved[0]} calls begun and their outputs not saved at the kill")
    record_report(report)

    assert report.lost == 0, report.notes
    assert report.duplicates == 0, report.notes
    assert report.errors == 0
    assert report.lineage_incomplete == 0, report.notes
    if unsaved:  # the worker died: only the calls whose outputs it had not saved are repeated
        assert report.provider_calls - N <= unsaved[0], report.notes
    else:  # the workers lived on: redelivered tasks are answered from their store
        assert report.provider_calls == N, report.notes


def count_keys(redis_url: str, pattern: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()
