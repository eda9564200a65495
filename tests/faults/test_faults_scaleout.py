"""Scale-out under load: router, aggregator and worker replicas are added, then removed by
SIGTERM and SIGKILL, while requests flow at a constant rate. Every change is a rebalance of
a consumer group with work in flight.

Nothing is lost, no request gets two answers, lineage is complete, and provider calls beyond
one per request stay within what the simulator had in flight at each removal (plus the calls
answered and not yet saved then). A replica stopped by SIGTERM exits by itself, with code 0,
within its drain bound. The time each added replica took to be ready is noted in the ledger.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from modelbus_testing.simulator import calls_in_flight, provider_calls, simulate

from tests.faults.ledger import Recorder, check_lineage, explain_lost, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

RATE, LATENCY_MS = 20.0, 100
#: requests are sent in chunks of this many until the scaling is done, then one more chunk
CHUNK = 100
#: a service's default drain bound (MODELBUS_DRAIN_TIMEOUT_S)
DRAIN_S = 20.0
#: process exit after the consumers stopped: producer, Redis and health server closed
EXIT_SLACK_S = 5.0


class Removals:
    """Replicas removed from the stack, with what the simulator had in flight at each."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.in_flight: list[int] = []
        self.notes: list[str] = []
        self.exits: list[tuple[str, int | None, float]] = []  # SIGTERMs: name, code, seconds

    def remove(self, name: str, *, kill: bool) -> None:
        proc = self.stack.child(name).proc
        started = time.monotonic()
        self.stack.remove_replica(name, kill=kill,
                                  before_stop=lambda: self.in_flight.append(
                                      calls_in_flight(self.stack)))
        took = time.monotonic() - started
        signal = "SIGKILL" if kill else "SIGTERM"
        self.notes.append(f"{signal} {name}: {self.in_flight[-1]} provider calls in flight, "
                          f"gone in {took:.1f}s")
        if not kill:
            self.exits.append((name, proc.returncode, took))


async def load_until(bootstrap: str, done: asyncio.Future) -> list[str]:
    """Requests at RATE until ``done`` (and one chunk more); returns the ids sent."""
    prefix, ids = f"scale-{uuid.uuid4().hex[:6]}", []
    while True:
        finished = done.done()
        chunk = [f"{prefix}-{len(ids) + i}" for i in range(CHUNK)]
        await produce_at_rate(bootstrap, chunk, RATE)
        ids += chunk
        if finished:
            return ids


@pytest.mark.timeout(1200)
async def test_replicas_added_and_removed_under_load(fault_stack, record_report):
    stack = fault_stack
    simulate(stack, "gpt-4o-mini", latency_ms=LATENCY_MS)
    rec = Recorder(stack.bootstrap)
    await rec.start()
    removals = Removals(stack)

    def scale() -> None:
        time.sleep(2)
        second_worker, *_, second_aggregator = stack.add_replicas(
            "worker-openai", "worker-openai", "router", "aggregator")
        removals.remove("worker-openai", kill=False)  # the first worker drains and leaves
        removals.remove(second_worker, kill=True)
        removals.remove(second_aggregator, kill=False)
        removals.remove("router", kill=True)  # the added router carries on alone
        stack.add_replicas("worker-openai")

    scaling = asyncio.ensure_future(asyncio.to_thread(scale))
    ids = await load_until(stack.bootstrap, scaling)
    await scaling
    await rec.wait(ids, timeout=120)
    await rec.stop()
    report = tally("replicas added and removed mid-load (router, aggregator, worker)", ids,
                   rec)
    report.provider_calls = provider_calls(stack)
    await check_lineage(stack.database_url, ids, rec, report)
    if report.lost:
        await explain_lost(rec, report)
    ready = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stack.ready_s.items())
    report.notes += [f"replicas ready (start to /readyz): {ready}", *removals.notes]
    record_report(report)

    assert report.lost == 0, report.notes
    assert report.duplicates == 0, report.notes
    assert report.errors == 0, report.notes
    assert report.lineage_incomplete == 0, report.notes
    for name, code, took in removals.exits:
        assert code == 0, f"{name} did not exit by itself after SIGTERM ({code})"
        assert took <= DRAIN_S + EXIT_SLACK_S, f"{name} took {took:.1f}s to stop"
    # repeated provider calls: at most those in flight at each removal, plus those answered
    # and not yet saved then (rate x provider latency, x2 slack, + 5 each)
    per_removal = RATE * LATENCY_MS / 1000 * 2 + 5
    assert report.provider_calls - len(ids) <= sum(removals.in_flight) + per_removal * len(
        removals.in_flight), report.notes
