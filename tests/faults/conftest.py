"""Fault scenarios get a stack of their own (they kill its processes) and report a ledger
row each; the table is printed at the end of the run (copied into docs/reliability.md).

A scenario's stack has its own broker and Redis, never the session's. Every service uses
fixed consumer group names, so on a shared broker a scenario inherits whatever an earlier
one left unconsumed on the topics: its services work through that backlog before reaching
its own requests (which then miss the ledger's wait) and, with the earlier scenario's Redis
state gone, answer the earlier requests a second time. A Redis database picked by number on
the machine's shared server could be flushed by another test session using the same one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from modelbus_cli.processes import ProcessGroup
from modelbus_cli.stack import start_broker, start_redis

from tests.conftest import start_stack
from tests.faults.ledger import Report

REPORTS: list[Report] = []
HEADER = ("| scenario | sent | responses | error responses | DLQ | duplicates | lost | "
          "lineage incomplete | provider calls |\n|---|---|---|---|---|---|---|---|---|")


@dataclass
class PrivateInfra:
    """A tansu broker and a valkey-server for one scenario only (logs in ``infra/logs``)."""

    group: ProcessGroup
    bootstrap: str
    redis_url: str


@pytest.fixture
def private_infra(tmp_path_factory):
    group = ProcessGroup(tmp_path_factory.mktemp(f"infra-{uuid.uuid4().hex[:4]}"))
    try:
        yield PrivateInfra(group, start_broker(group), start_redis(group))
    finally:
        group.stop_all()


@pytest.fixture
def fault_stack(tmp_path_factory, private_infra):
    """A stack on a broker and Redis of its own."""
    workdir = tmp_path_factory.mktemp(f"faults-{uuid.uuid4().hex[:4]}")
    stack = start_stack(workdir, private_infra.bootstrap, private_infra.redis_url,
                        f"sqlite+aiosqlite:///{workdir / 'audit.db'}")
    yield stack
    stack.stop()


@pytest.fixture
def record_report():
    def record(report: Report) -> Report:
        REPORTS.append(report)
        return report
    return record


def pytest_terminal_summary(terminalreporter):
    if REPORTS:
        terminalreporter.write_line("\nfault ledger:")
        terminalreporter.write_line(HEADER)
        for report in REPORTS:
            terminalreporter.write_line(report.row())
            for note in report.notes:
                terminalreporter.write_line(f"    {note}")
