"""Fixtures for cross-service tests: whole stacks of real processes, and an audit service
process of one's own (its own consumer group, store and settings) with API keys for both
roles (the components themselves come from the workspace's root ``conftest.py``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from modelbus_audit.auth import key_digest
from modelbus_cli.processes import ProcessGroup, free_port, http_ok, wait_for
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


def start_routed_stack(workdir: Path, bootstrap: str, redis: str, policy: str,
                       workers: dict[str, dict[str, str]]) -> Stack:
    """The request path without the audit: the simulator, a worker per provider in
    ``workers`` (with extra settings), an aggregator of its own and a router on ``policy``."""
    (workdir / "policy.yaml").write_text(policy)
    stack = Stack(workdir, providers=tuple(workers))
    stack.bootstrap, stack.redis_url, stack.database_url = bootstrap, redis, "unused"
    try:
        stack.start_infra()
        stack.start_simulator()
        for provider, extra in workers.items():
            stack.start_service(f"worker-{provider}", "modelbus_adapter_worker.app",
                                {**stack.worker_env(provider), **extra})
        stack.start_service("aggregator", "modelbus_aggregator.app",
                            {"MODELBUS_AGGREGATOR_GROUP_ID": f"agg-{uuid.uuid4().hex[:8]}"})
        stack.start_service("router", "modelbus_router.app",
                            {"MODELBUS_POLICY_PATH": str(workdir / "policy.yaml")})
        stack.wait_ready()
        return stack
    except BaseException:
        stack.stop()
        raise


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    """One stack per test module with the SQLite audit store, for tests where the store
    kind does not matter."""
    workdir = tmp_path_factory.mktemp(f"stack-{uuid.uuid4().hex[:4]}")
    database = f"sqlite+aiosqlite:///{workdir / 'audit.db'}"
    running = start_stack(workdir, kafka_bootstrap, redis_url, database)
    yield running
    running.stop()


COMPLIANCE_KEY = "compliance-" + uuid.uuid4().hex
OPS_KEY = "ops-" + uuid.uuid4().hex
API_KEYS = f"{key_digest(COMPLIANCE_KEY)}:compliance,{key_digest(OPS_KEY)}:ops"


class AuditProcess:
    def __init__(self, group: ProcessGroup, name: str, url: str, module: str) -> None:
        self.group, self.name, self.url, self.module = group, name, url, module

    def log(self) -> str:
        return (self.group.workdir / "logs" / f"{self.name}.log").read_text(errors="replace")


@pytest.fixture
def audit_process(tmp_path, kafka_bootstrap):
    """``start(database_url, module=..., **env)`` → a running audit (or API) process."""
    group = ProcessGroup(tmp_path)

    def start(database_url: str, module: str = "modelbus_audit.app", **env: str) -> AuditProcess:
        port = free_port()
        name = f"audit-{uuid.uuid4().hex[:6]}"
        child = group.python_module(name, module, {
            "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "MODELBUS_HEALTH_PORT": str(port),
            "DATABASE_URL": database_url,
            "MODELBUS_AUDIT_GROUP_ID": f"audit-test-{uuid.uuid4().hex[:8]}",
            "MODELBUS_AUDIT_API_KEYS": API_KEYS,
            **env,
        })
        url = f"http://127.0.0.1:{port}"
        probe = "/readyz" if module.endswith(".app") else "/healthz"
        try:
            wait_for(lambda: http_ok(url + probe), name, 180, child.proc)  # busy CI machines
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{group.tail(name)}") from None
        return AuditProcess(group, name, url, module)

    yield start
    group.stop_all()
