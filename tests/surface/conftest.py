"""A whole request path for the provider-surface tests: the simulator, a worker for each of
the four providers, router, aggregator and a gateway with one API key, on the session's
broker and Redis."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from modelbus_cli.stack import Stack
from modelbus_gateway.auth import hash_key
from modelbus_schemas.topics import PROVIDERS
from modelbus_testing.simulator import simulate_rules

CHAT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
               "gemini": "gemini-2.5-flash", "selfhosted": "qwen2.5-vl-32b-instruct"}
EMBED_MODELS = {"openai": "text-embedding-3-small", "gemini": "gemini-embedding-001",
                "selfhosted": "nomic-embedding-v1"}


def policy() -> str:
    lines = ["catalog:"]
    for provider, model in CHAT_MODELS.items():
        extra = (", capabilities: [chat, tools, vision, json_schema, json_object]"
                 if provider == "selfhosted" else "")
        lines.append(f"  chat-{provider}: {{provider: {provider}, model: {model}{extra}}}")
    for provider, model in EMBED_MODELS.items():
        lines.append(f"  embed-{provider}: {{provider: {provider}, model: {model}, "
                     "capabilities: [embeddings]}")
    lines.append("  reasoning: {provider: openai, model: o3-mini}")
    lines.append("routes:")
    lines.append("  chat-reasoning: {strategy: single, targets: [{model: reasoning}]}")
    for provider in CHAT_MODELS:
        lines.append(f"  chat-{provider}: {{strategy: single, targets: [{{model: chat-{provider}}}]}}")
    for provider in EMBED_MODELS:
        lines.append(f"  embed-{provider}: {{strategy: single, "
                     f"targets: [{{model: embed-{provider}}}]}}")
    return "\n".join(lines) + "\n"


@dataclass
class SurfaceStack:
    stack: Stack
    gateway_url: str
    api_key: str
    tenant: str

    @property
    def bootstrap(self) -> str:
        return self.stack.bootstrap


@pytest.fixture(scope="package")  # one stack for every surface module: it takes a while
def surface_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp(f"surface-{uuid.uuid4().hex[:6]}")
    (workdir / "policy.yaml").write_text(policy())
    tenant = f"surf-{uuid.uuid4().hex[:8]}"
    key = f"sk-surface-{uuid.uuid4().hex}"
    keys = [{"key_sha256": hash_key(key), "tenant": tenant, "team": "agents", "user": "u"}]
    stack = Stack(workdir, providers=PROVIDERS)
    stack.bootstrap, stack.redis_url = kafka_bootstrap, redis_url
    stack.database_url = f"sqlite+aiosqlite:///{workdir / 'audit.db'}"
    env = {"MODELBUS_POLICY_PATH": str(workdir / "policy.yaml")}
    try:
        stack.start_simulator()
        for provider in PROVIDERS:
            stack.start_service(f"worker-{provider}", "modelbus_adapter_worker.app",
                                stack.worker_env(provider))
        stack.start_service("aggregator", "modelbus_aggregator.app",
                            {"MODELBUS_AGGREGATOR_GROUP_ID": f"agg-{uuid.uuid4().hex[:8]}"})
        stack.start_service("router", "modelbus_router.app", env)
        stack.start_service("gateway", "modelbus_gateway.app",
                            {**env, "MODELBUS_API_KEYS": json.dumps(keys)})
        stack.wait_ready()
        # the strictest reading of Anthropic's turn-order rules (older API versions, Bedrock)
        simulate_rules(stack, **{"anthropic.first_user": True,
                                 "anthropic.alternating_roles": True})
        yield SurfaceStack(stack, stack.health["gateway"], key, tenant)
    finally:
        stack.stop()
