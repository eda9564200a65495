"""Fixtures of the gateway's cross-service tests: a whole stack (simulator, router with a
test policy, an openai worker, aggregator, audit) on the session's broker and Redis, plus
a gateway process with hashed API keys, all through the project's own ``Stack``."""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from modelbus_cli.stack import Stack
from modelbus_gateway.auth import hash_key

POLICY = """
catalog:
  mini: {provider: openai, model: gpt-gw-mini, input_usd_per_mtok: 0.15,
         output_usd_per_mtok: 0.60}
  slow: {provider: openai, model: gpt-slow, input_usd_per_mtok: 0.15,
         output_usd_per_mtok: 0.60}
  idem: {provider: openai, model: gpt-idem}
routes:
  summarize: {strategy: single, targets: [{model: mini}]}
  slow: {strategy: single, targets: [{model: slow}]}
  idem: {strategy: single, targets: [{model: idem}]}
  research: {strategy: single, targets: [{model: mini}], allow: {teams: [research]}}
budgets:
  - {scope: team, name: broke, period: day, limit_usd: 0}
quotas:
  - {team: throttled, per: minute, max_requests: 0}
"""

TEAMS = ("support", "research", "broke", "throttled")


@dataclass
class GatewayStack:
    stack: Stack
    url: str  # the gateway's base URL, e.g. http://127.0.0.1:PORT
    keys: dict[str, str]  # team → plaintext API key (the gateway only knows the hashes)
    tenant: str

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def script_model(self, model: str, behaviour: dict) -> None:
        req = urllib.request.Request(
            f"{self.stack.simulator_url}/_sim/models/{model}", method="PUT",
            data=json.dumps(behaviour).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def model_calls(self, model: str) -> int:
        with urllib.request.urlopen(f"{self.stack.simulator_url}/_sim/stats", timeout=5) as r:
            return json.loads(r.read())["models"].get(model, {}).get("calls", 0)


@pytest.fixture(scope="module")
def gateway_stack(tmp_path_factory, kafka_bootstrap, redis_url, sqlite_url):
    workdir = tmp_path_factory.mktemp(f"gateway-{uuid.uuid4().hex[:6]}")
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    tenant = f"gwt-{uuid.uuid4().hex[:8]}"
    keys = {team: f"sk-test-{team}-{uuid.uuid4().hex}" for team in TEAMS}
    entries = [{"key_sha256": hash_key(k), "tenant": tenant, "team": team, "user": f"{team}-u"}
               for team, k in keys.items()]
    stack = Stack(workdir, providers=("openai",))
    stack.bootstrap, stack.redis_url, stack.database_url = kafka_bootstrap, redis_url, sqlite_url
    try:
        stack.start_simulator()
        env = {"MODELBUS_POLICY_PATH": str(policy)}
        stack.start_service("router", "modelbus_router.app", env)
        stack.start_service("aggregator", "modelbus_aggregator.app")
        stack.start_service("audit", "modelbus_audit.app")
        stack.start_service("worker-openai", "modelbus_adapter_worker.app",
                            stack.worker_env("openai"))
        stack.start_service("gateway", "modelbus_gateway.app",
                            {**env, "MODELBUS_API_KEYS": json.dumps(entries)})
        stack.wait_ready()
        yield GatewayStack(stack, stack.health["gateway"], keys, tenant)
    finally:
        stack.stop()
