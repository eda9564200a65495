"""Provider adapters: translate a canonical task to a provider's wire format and back.

An adapter is small and pure: ``build`` makes the HTTP request, ``parse`` reads a success
body, ``stream_parser`` reads an SSE stream frame by frame, ``classify`` turns an error
response into a :class:`ProviderError`. Retries, timeouts, breakers, rate limits and
fallback wrap adapters (:mod:`modelbus_adapter_worker.executor`); none of them is a flag
in here. Adapters know nothing of HTTP clients: :mod:`modelbus_adapter_worker.transport`
sends what they build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelbus_schemas import TaskEvent
from modelbus_schemas.content import ToolCall

from modelbus_adapter_worker.errors import ProviderError


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    json: dict
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    response_model: str | None
    ttft_ms: float | None = None
    tool_calls: list[ToolCall] | None = None
    embeddings: list[list[float]] | None = None


class StreamParser(Protocol):
    def feed(self, event: str | None, data: str) -> bool:
        """One SSE frame; returns True when it carried output text. Raises ProviderError
        for an error frame or a frame that is not JSON."""

    def finish(self) -> Completion:
        """The completion; raises a retryable ProviderError when the terminal event never
        came (a truncated stream is never a complete answer)."""


class Adapter(Protocol):
    system: str

    def build(self, task: TaskEvent, *, stream: bool = False) -> HttpRequest: ...

    def parse(self, body: bytes, request: HttpRequest | None = None) -> Completion: ...

    def stream_parser(self, request: HttpRequest | None = None) -> StreamParser: ...

    def classify(self, status: int, headers: dict[str, str], body: bytes) -> ProviderError: ...


def build_adapter(provider: str, api_key: str | None, **options) -> Adapter:
    """The adapter of a provider deployment (``openai``, ``anthropic``, ``gemini``,
    ``selfhosted``)."""
    from modelbus_adapter_worker.adapters.anthropic_messages import AnthropicMessagesAdapter
    from modelbus_adapter_worker.adapters.gemini_generate import GeminiAdapter
    from modelbus_adapter_worker.adapters.openai_chat import OpenAIChatAdapter

    if provider == "openai":
        return OpenAIChatAdapter(api_key, system="openai")
    if provider == "selfhosted":
        # vLLM and Ollama read the classic `max_tokens` field.
        return OpenAIChatAdapter(api_key, system="selfhosted", max_tokens_field="max_tokens")
    if provider == "anthropic":
        return AnthropicMessagesAdapter(api_key or "", **options)
    if provider == "gemini":
        return GeminiAdapter(api_key or "")
    raise ValueError(f"no adapter for provider {provider!r}")


def build_embedder(provider: str, api_key: str | None):
    """The embeddings adapter of a provider deployment, or None when the provider has no
    embeddings API (Anthropic)."""
    from modelbus_adapter_worker.adapters.embeddings import (
        GeminiEmbedder,
        OpenAIEmbedder,
    )

    if provider in ("openai", "selfhosted"):
        return OpenAIEmbedder(api_key, system=provider)
    if provider == "gemini":
        return GeminiEmbedder(api_key or "")
    return None
