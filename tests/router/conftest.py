"""Fixtures of the router's cross-service tests: a router process started with a test policy
(``MODELBUS_POLICY_PATH``) on the session's broker and Redis, plus optional simulator and
workers, through the project's own ``Stack``."""

from __future__ import annotations

import uuid

import pytest
from modelbus_cli.stack import Stack


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
