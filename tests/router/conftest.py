"""Fixtures of the router's cross-service tests: a router process started with a test policy
(``MODELBUS_POLICY_PATH``) on the session's broker and Redis, plus optional simulator and
workers, through the project's own ``Stack``."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from modelbus_cli.stack import Stack
from modelbus_router.engine import RouterEngine
from modelbus_router.reload import PolicySource


@pytest.fixture
def router_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    started: list[Stack] = []

    def start(policy_text: str, workers: tuple[str, ...] = (),
              env: dict[str, str] | None = None) -> Stack:
        workdir = tmp_path_factory.mktemp(f"router-{uuid.uuid4().hex[:6]}")
        policy = workdir / "policy.yaml"
        policy.write_text(policy_text)
        stack = Stack(workdir, providers=workers)
        stack.bootstrap, stack.redis_url = kafka_bootstrap, redis_url
        started.append(stack)
        if workers:
            stack.start_simulator()
            for provider in workers:
                stack.start_service(f"worker-{provider}", "modelbus_adapter_worker.app",
                                    stack.worker_env(provider))
        stack.start_service("router", "modelbus_router.app",
                            {"MODELBUS_POLICY_PATH": str(policy), **(env or {})})
        stack.wait_ready()
        return stack

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture
async def engine_on(tmp_path, redis_url):
    """``engine_on(policy_text)`` → an in-process :class:`RouterEngine` on that policy and the
    session's Redis (its client closed after the test)."""
    clients = []

    def build(policy_text: str) -> RouterEngine:
        path = tmp_path / f"policy-{len(clients)}.yaml"
        path.write_text(policy_text)
        clients.append(aioredis.Redis.from_url(redis_url))
        return RouterEngine(PolicySource(path), clients[-1])

    yield build
    for client in clients:
        await client.aclose()

