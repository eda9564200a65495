"""Fixtures for cross-service tests: whole stacks of real processes (the components
themselves come from the workspace's root ``conftest.py``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from modelbus_cli.stack import Stack


def start_stack(workdir: Path, bootstrap: str, redis: str, database: str, **kw) -> Stack:
    stack = Stack(workdir, **kw)
    stack.bootstrap, stack.redis_url, stack.database_url = bootstrap, redis, database
    try:
        return stack.start()
    except BaseException:
        stack.stop()
        raise


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, tmp_path_factory, kafka_bootstrap, redis_url):
    database = request.getfixturevalue(f"{request.param}_url")
    workdir = tmp_path_factory.mktemp(f"stack-{request.param}-{uuid.uuid4().hex[:4]}")
    running = start_stack(workdir, kafka_bootstrap, redis_url, database)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    """One stack per test module with the SQLite audit store, for tests where the store
    kind does not matter."""
    workdir = tmp_path_factory.mktemp(f"stack-{uuid.uuid4().hex[:4]}")
    database = f"sqlite+aiosqlite:///{workdir / 'audit.db'}"
    running = start_stack(workdir, kafka_bootstrap, redis_url, database)
    yield running
    running.stop()
