"""SIGKILL of each service in the middle of load, then restart: nothing lost, no duplicate
responses, lineage complete, duplicate provider calls bounded by the calls in flight."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from modelbus_testing.simulator import provider_calls, simulate

from tests.faults.ledger import Recorder, check_lineage, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

N, RATE = 200, 50.0


@pytest.mark.parametrize("victim", ["router", "worker-openai", "aggregator", "audit"])
async def test_sigkill_mid_load_loses_nothing(fault_stack, record_report, victim):
    stack = fault_stack
    simulate(stack, "gpt-4o-mini", latency_ms=100)
    ids = [f"kill-{victim}-{uuid.uuid4().hex[:6]}-{i}" for i in range(N)]
    rec = Recorder(stack.bootstrap)
    await rec.start()
    load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, RATE))
    await asyncio.sleep(N / RATE / 2)
    await asyncio.to_thread(stack.restart, victim, kill=True)
    await load
    await rec.wait(ids, timeout=90)
    await rec.stop()
    report = tally(f"SIGKILL {victim} mid-load", ids, rec)
    report.provider_calls = provider_calls(stack)
    await check_lineage(stack.database_url, ids, rec, report)
    record_report(report)

    assert report.lost == 0, report.notes
    assert report.duplicates == 0, report.notes
    assert report.errors == 0
    assert report.lineage_incomplete == 0, report.notes
    # at most the calls in flight at the crash are repeated: rate x provider latency, x2 slack
    assert report.provider_calls - N <= RATE * 0.1 * 2 + 5
