"""Gateway settings (env prefix ``MODELBUS_``), on top of the shared runtime settings.

The OpenAI-compatible API is served on the service's HTTP port (``MODELBUS_HEALTH_PORT``),
next to ``/healthz``, ``/readyz`` and ``/metrics``. The admission limits (rate per key,
failed authentications per address, body size) are documented in the README's gateway
section.
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
    stream_chunk_chars: int = Field(
        default=64, ge=1, description="size of the content chunks a stream=true call gets "
        "when it is answered from the final response (nothing streamed)")
    stream_queue_events: int = Field(
        default=256, ge=1, description="stream events waiting for one slow caller; beyond, "
        "its delivery stops and the final response supplies the rest")

    # Admission: limits shared by every replica through Redis (modelbus_gateway.admission).
    key_requests_per_min: int = Field(
        default=600, ge=0, description="calls per minute per API key, all replicas together "
        "(0: unlimited); an entry's requests_per_min overrides it")
    key_burst: int = Field(default=60, ge=1,
                           description="calls a key may make at once on top of its rate")
    auth_failures_per_min: int = Field(
        default=10, ge=0, description="sustained failed authentications per client address "
        "before 429 (0: no throttle)")
    auth_failure_burst: int = Field(
        default=20, ge=1, description="failed authentications an address may make at once")
    rate_limit_prefix: str = Field(
        default="mb:gw", min_length=1,
        description="Redis key prefix of the limits (gateways sharing one apply the same)")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024,
        description="largest request body; larger ones get 413 without being read")
    access_log: bool = Field(default=True, description="one JSON line per API call at INFO")
