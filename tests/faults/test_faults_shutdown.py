"""SIGTERM of a service mid-load: it stops fetching, finishes the work in flight within
``MODELBUS_DRAIN_TIMEOUT_S``, commits, leaves its group and exits with code 0 by itself.

Unlike a SIGKILL, drained work is not done again by the next owner of the partitions: with
calls in flight at the signal, provider calls still equal requests. Work that cannot finish
within the bound (a provider that hangs) does not hold the process: it is abandoned
uncommitted and redelivered to the restarted service, still ending in exactly one response.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Callable

import pytest
from modelbus_runtime.consumer import CLOSE_RESERVE_S
from modelbus_testing.simulator import provider_calls, simulate

from tests.faults.ledger import Recorder, Report, check_lineage, explain_lost, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

DRAIN_S = 6.0
#: after the drain: commit, leave the group, close clients, producer and health server
EXIT_SLACK_S = 10.0


@pytest.fixture
def drain_stack(monkeypatch, request):
    """A fault stack whose services drain for at most DRAIN_S (the default is 20 s, longer
    than the 15 s after which the stack's own stop would SIGKILL a service)."""
    monkeypatch.setenv("MODELBUS_DRAIN_TIMEOUT_S", str(DRAIN_S))
    return request.getfixturevalue("fault_stack")


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.05)


async def sigterm_and_restart(stack, name: str) -> tuple[int | None, float]:
    """SIGTERM ``name``, wait for it to exit by itself, then start it again with the same
    settings. Returns its exit code (None: still running after the bound) and the seconds
    from the signal to the exit."""
    proc = stack.child(name).proc
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(proc.wait, DRAIN_S + EXIT_SLACK_S)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - started
    # exited already: restart only starts it again (else it SIGKILLs the stuck one first)
    await asyncio.to_thread(stack.restart, name, kill=False)
    return code, took


async def settle(stack, rec: Recorder, scenario: str, ids: list[str], note: str) -> Report:
    """The scenario's ledger row: outcomes, provider calls, lost explained, lineage."""
    report = tally(scenario, ids, rec)
    report.provider_calls = provider_calls(stack)
    await explain_lost(rec, report)
    await check_lineage(stack.database_url, ids, rec, report)
    report.notes.append(note)
    return report


def answered(rec: Recorder, ids: list[str]) -> int:
    return sum(1 for i in ids if i in rec.responses)


def assert_clean_exit(report: Report, code: int | None, took: float) -> None:
    assert code == 0, f"exit code {code} ({report.notes})"
    assert took <= DRAIN_S + EXIT_SLACK_S, f"exited after {took:.1f}s"


async def test_sigterm_worker_finishes_calls_in_flight(drain_stack, record_report):
    stack = drain_stack
    simulate(stack, "gpt-4o-mini", latency_ms=1500)
    ids = [f"term-worker-{uuid.uuid4().hex[:6]}-{i}" for i in range(40)]
    rec = Recorder(stack.bootstrap)
    await rec.start()
    load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, 20.0))
    await until(lambda: provider_calls(stack) >= 5, "provider calls in flight")
    in_flight = provider_calls(stack) - answered(rec, ids)
    code, took = await sigterm_and_restart(stack, "worker-openai")
    await load
    await rec.wait(ids, timeout=90)
    await rec.stop()
    report = await settle(stack, rec, "SIGTERM worker-openai, 1.5 s calls in flight", ids,
                          f"exit code {code} {took:.1f}s after SIGTERM (drain bound {DRAIN_S}s), "
                          f"{in_flight} calls in flight at the signal")
    record_report(report)

    assert in_flight > 0, "the signal came while calls were in flight"
    assert_clean_exit(report, code, took)
    assert report.lost == 0 and report.duplicates == 0, report.notes
    assert report.errors == 0 and report.lineage_incomplete == 0, report.notes
    # drained calls were finished and committed: the next owner repeated none of them
    assert report.provider_calls == len(ids), report.notes


async def test_sigterm_worker_abandons_a_call_that_outlives_the_bound(drain_stack,
                                                                     record_report):
    stack = drain_stack
    simulate(stack, "gpt-4o-mini", latency_ms=50, fail_first=1, failure={"kind": "hang"})
    run = uuid.uuid4().hex[:6]
    hung, others = f"term-hang-{run}", [f"term-hang-{run}-{i}" for i in range(20)]
    ids = [hung, *others]
    rec = Recorder(stack.bootstrap)
    await rec.start()
    await produce_at_rate(stack.bootstrap, [hung], 1.0)
    await until(lambda: provider_calls(stack) >= 1, "the first call, which hangs")
    await produce_at_rate(stack.bootstrap, others, 20.0)
    await until(lambda: rec.settled(others), "the calls that do not hang answered")
    assert hung not in rec.responses
    code, took = await sigterm_and_restart(stack, "worker-openai")
    await rec.wait(ids, timeout=90)
    await rec.stop()
    report = await settle(stack, rec, "SIGTERM worker-openai, a call hangs past the drain bound",
                          ids, f"exit code {code} {took:.1f}s after SIGTERM (drain bound {DRAIN_S}s)")
    record_report(report)

    # the hung call is waited for until the bound less what is kept for the last commit and
    # the leave (modelbus_runtime.consumer.CLOSE_RESERVE_S), then cancelled
    work_bound = DRAIN_S - min(CLOSE_RESERVE_S, DRAIN_S / 4)
    assert took >= work_bound, "the drain waited for the hung call up to its bound"
    assert_clean_exit(report, code, took)
    assert report.lost == 0 and report.duplicates == 0, report.notes
    assert report.errors == 0 and report.lineage_incomplete == 0, report.notes
    # the abandoned task was redelivered and called again by the restarted worker; tasks
    # after it on its partition were redelivered too and answered from the result store
    assert rec.responses[hung][0]["status"] == "ok"
    assert report.provider_calls == len(ids) + 1, report.notes


@pytest.mark.parametrize("victim", ["router", "aggregator"])
async def test_sigterm_router_and_aggregator_drain(drain_stack, record_report, victim):
    stack = drain_stack
    simulate(stack, "gpt-4o-mini", latency_ms=100)
    n, rate = 100, 50.0
    ids = [f"term-{victim}-{uuid.uuid4().hex[:6]}-{i}" for i in range(n)]
    rec = Recorder(stack.bootstrap)
    await rec.start()
    load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, rate))
    await asyncio.sleep(n / rate / 2)
    code, took = await sigterm_and_restart(stack, victim)
    await load
    await rec.wait(ids, timeout=90)
    await rec.stop()
    report = await settle(stack, rec, f"SIGTERM {victim} mid-load", ids,
                          f"exit code {code} {took:.1f}s after SIGTERM (drain bound {DRAIN_S}s)")
    record_report(report)

    assert_clean_exit(report, code, took)
    assert report.lost == 0 and report.duplicates == 0, report.notes
    assert report.errors == 0 and report.lineage_incomplete == 0, report.notes
    assert report.provider_calls == n, report.notes
