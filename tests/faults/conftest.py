"""Fault scenarios get a stack of their own (they kill its processes) and report a ledger
row each; the table is printed at the end of the run (copied into docs/reliability.md)."""

from __future__ import annotations

import random
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import start_stack
from tests.faults.ledger import Report

REPORTS: list[Report] = []
HEADER = ("| scenario | sent | responses | error responses | DLQ | duplicates | lost | "
          "lineage incomplete | provider calls |\n|---|---|---|---|---|---|---|---|---|")


def private_redis_db(redis_url: str) -> str:
    """A Redis database of its own for one scenario (circuits, budgets, caches and fan-in
    state of one scenario must not leak into the next), emptied first."""
    import redis

    parts = urlsplit(redis_url)
    url = urlunsplit(parts._replace(path=f"/{random.randint(1, 15)}"))
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def fault_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp(f"faults-{uuid.uuid4().hex[:4]}")
    stack = start_stack(workdir, kafka_bootstrap, private_redis_db(redis_url),
                        f"sqlite+aiosqlite:///{workdir / 'audit.db'}")
    yield stack
    stack.stop()


@pytest.fixture
def record_report():
    def record(report: Report) -> Report:
        REPORTS.append(report)
        return report
    return record


def simulate(stack, model: str, **behaviour) -> None:
    httpx.put(f"{stack.simulator_url}/_sim/models/{model}", json=behaviour).raise_for_status()


def provider_calls(stack) -> int:
    return httpx.get(f"{stack.simulator_url}/_sim/stats").json()["total_calls"]


def pytest_terminal_summary(terminalreporter):
    if REPORTS:
        terminalreporter.write_line("\nfault ledger:")
        terminalreporter.write_line(HEADER)
        for report in REPORTS:
            terminalreporter.write_line(report.row())
            for note in report.notes:
                terminalreporter.write_line(f"    {note}")
