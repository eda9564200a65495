"""The modelbus stack under test, started as ``bench/gateway_bench.py`` starts it.

Broker (tansu), a private Redis, router, one openai worker calling the mock, aggregator,
audit on SQLite, and the gateway with one bench key whose ``requests_per_min`` is 0 (the
benchmark measures, it is not rate limited). The mock lives in a group of its own, so a
fresh stack per level keeps calling the same provider as every other target.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from modelbus_cli.processes import ProcessGroup
from modelbus_cli.stack import Stack, start_broker, start_redis
from modelbus_gateway.auth import hash_key

SERVICES = ("router", "aggregator", "audit")


@dataclass
class Modelbus:
    stack: Stack
    infra: ProcessGroup
    key: str
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return self.stack.health["gateway"]

    @property
    def bootstrap(self) -> str:
        return self.stack.bootstrap

    def stop(self) -> None:
        self.stack.stop()
        self.infra.stop_all()


def start(mock_url: str, bootstrap: str | None = None, redis_url: str | None = None,
          gateway: bool = True) -> Modelbus:
    """A whole stack calling ``mock_url``; its own broker and Redis unless given."""
    workdir = Path(tempfile.mkdtemp(prefix="modelbus-peers-"))
    infra = ProcessGroup(workdir / "infra")
    stack = Stack(workdir / "stack", providers=("openai",))
    key = "sk-peers-" + secrets.token_hex(12)
    try:
        stack.bootstrap = bootstrap or start_broker(infra)
        stack.redis_url = redis_url or start_redis(infra)
        stack.database_url = f"sqlite+aiosqlite:///{workdir / 'audit.db'}"
        stack.simulator_url = mock_url
        for name in SERVICES:
            stack.start_service(name, f"modelbus_{name}.app")
        stack.start_service("worker", "modelbus_adapter_worker.app", stack.worker_env("openai"))
        if gateway:
            keys = [{"key_sha256": hash_key(key), "tenant": "bench", "team": "bench",
                     "requests_per_min": 0}]
            stack.start_service("gateway", "modelbus_gateway.app",
                                {"MODELBUS_API_KEYS": json.dumps(keys)})
        stack.wait_ready(timeout=120)
    except BaseException:
        stack.stop()
        infra.stop_all()
        raise
    pids = {c.name: c.proc.pid for c in [*stack.group.children, *infra.children]}
    return Modelbus(stack, infra, key, pids)
