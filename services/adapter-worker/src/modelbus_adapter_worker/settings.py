"""Worker settings (env prefix ``MODELBUS_``), with per-provider defaults.

The API key comes from ``MODELBUS_API_KEY`` or from a mounted secret file
(``MODELBUS_API_KEY_FILE``, e.g. a Kubernetes secret volume); it is a ``SecretStr``, so it
never prints, and it is registered with the log scrubber at startup. The base URL comes
only from here, never from a task.
"""

from __future__ import annotations

from pathlib import Path

from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import RetrySpec
from pydantic import Field, SecretStr

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "selfhosted": "http://127.0.0.1:8000/v1",  # vLLM's default; Ollama: :11434/v1
}


class WorkerSettings(RuntimeSettings):
    provider: str = "openai"
    base_url: str | None = Field(default=None, description="default: the provider's own")
    api_key: SecretStr | None = None
    api_key_file: Path | None = None

    # Calls.
    stream: bool = Field(default=True, description="stream from providers (measures TTFT); "
                         "tasks with stream set are streamed whatever this says")
    stream_flush_ms: float = Field(
        default=50, gt=0, description="streamed tasks: after the first delta (published at "
        "once for time to first token), deltas are gathered into one stream event per this "
        "many ms; 50 ms is below a pause a reader notices, and turns a provider's tens to "
        "hundreds of deltas per second into at most 20 broker events per second per stream")
    stream_flush_deltas: int = Field(
        default=16, ge=1, description="streamed tasks: a stream event leaves as soon as this "
        "many deltas are gathered, before stream_flush_ms is up; bounds the size of an event "
        "when a provider bursts (16 deltas: a short sentence)")
    max_in_flight: int = 1000
    max_connections: int = 1000
    provider_keepalive_s: float = Field(
        default=4.0, gt=0, description="how long an idle pooled connection to the provider is "
        "kept for reuse; shorter than the provider's own idle timeout (common servers close "
        "idle connections after 5 s), so that few requests meet a connection the server has "
        "just closed (those are retried once on a fresh connection)")
    anthropic_max_tokens: int = 1024

    # Default retry policy, when the task's target carries none.
    max_attempts: int = 3
    base_delay_ms: int = 200
    max_delay_ms: int = 5000
    attempt_timeout_s: float = 30.0

    # Circuit breaker per provider/model, shared through Redis.
    breaker_failure_threshold: int = 5
    breaker_window_s: float = 30.0
    breaker_open_s: float = 10.0
    breaker_closed_cache_s: float = 0.1

    # Rate limits per provider, shared through Redis (0: unlimited).
    requests_per_min: int = 0
    tokens_per_min: int = 0
    rate_burst_s: float = 1.0

    result_ttl_s: int = 86_400
    embedding_cache_ttl_s: int = Field(default=7 * 86_400,
                                       description="how long a cached embedding is kept; "
                                       "0 turns the embedding cache off")
    redis_max_connections: int = 128

    def resolved_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider, DEFAULT_BASE_URLS["openai"])

    def resolved_api_key(self) -> str | None:
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip() or None
        if self.api_key is not None:
            return self.api_key.get_secret_value() or None
        return "sim-key"  # the local simulator accepts any key; real providers need theirs

    def default_retry(self) -> RetrySpec:
        return RetrySpec(max_attempts=self.max_attempts, base_delay_ms=self.base_delay_ms,
                         max_delay_ms=self.max_delay_ms,
                         attempt_timeout_ms=int(self.attempt_timeout_s * 1000))
