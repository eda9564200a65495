"""Fixtures of the worker's cross-service tests: the provider simulator as a real process
over real HTTP and the machine's Redis (helpers are in ``worker_helpers``)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from modelbus_cli.stack import Stack

from tests.worker.worker_helpers import SimAdmin


@pytest.fixture(scope="session")
def worker_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    """A process group with the simulator; worker processes are added by tests."""
    stack = Stack(tmp_path_factory.mktemp("worker-stack"), providers=())
    stack.bootstrap, stack.redis_url = kafka_bootstrap, redis_url
    stack.database_url = "sqlite+aiosqlite:///unused.db"
    stack.start_simulator()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def sim(worker_stack) -> SimAdmin:
    return SimAdmin(worker_stack.simulator_url)


@pytest.fixture
async def redis(redis_url):
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.5)
    yield client
    await client.aclose()
