"""Gateway settings (env prefix ``MODELBUS_``), on top of the shared runtime settings.

The OpenAI-compatible API is served on the service's HTTP port (``MODELBUS_HEALTH_PORT``),
next to ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

from modelbus_runtime.settings import RuntimeSettings
from pydantic import Field

from modelbus_gateway.auth import ApiKeyEntry


class GatewaySettings(RuntimeSettings):
    health_port: int = Field(default=8080, description="the API port (also health/metrics)")
    policy_path: str | None = Field(default=None, description="YAML policy; default: packaged")
    policy_reload_s: float = Field(default=1.0, gt=0)

    api_keys: list[ApiKeyEntry] = Field(
        default_factory=list,
        description='JSON list: [{"key_sha256": "<hex>", "tenant": "t", "team": "x", "user": "u"}]',
    )
    api_keys_file: str | None = Field(default=None, description="YAML/JSON file, same entries")

    reply_topic: str | None = Field(
        default=None, description="default: modelbus.responses.gateway-<instance_id>.v1"
    )
    reply_partitions: int = Field(default=1, ge=1)

    default_latency_budget_ms: int = Field(default=30_000, ge=100, le=600_000)
    deadline_grace_ms: int = Field(
        default=250, ge=0, description="extra wait past the budget before answering 504"
    )
    max_pending: int = Field(default=10_000, ge=1, description="calls awaiting a response")
    idempotency_ttl_s: int = Field(default=86_400, ge=1)
    idempotency_poll_ms: int = Field(default=50, ge=5)
    stream_chunk_chars: int = Field(default=64, ge=1)
