"""Provider adapters: translate a canonical task to a provider's wire format and back.

An adapter is small and pure: ``build`` makes the HTTP request, ``parse`` reads a success
body, ``stream_parser`` reads an SSE stream frame by frame (and hands out what arrived since
it was last asked, :class:`StreamDelta`), ``classify`` turns an error
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
from modelbus_schemas.stream import ToolCallDelta

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


@dataclass
class StreamDelta:
    """Output that arrived since the last :meth:`StreamParser.take_delta`: text to append,
    and tool-call fragments (``index`` names the call; id and name come with its first
    fragment, ``arguments`` is the next piece of its JSON text)."""

    text: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.text or self.tool_calls)

    def add(self, other: StreamDelta) -> None:
        """Append ``other``; consecutive fragments of one call become one fragment."""
        self.text += other.text
        for piece in other.tool_calls:
            last = self.tool_calls[-1] if self.tool_calls else None
            if last is not None and last.index == piece.index and piece.id is None and (
                    piece.name is None):
                self.tool_calls[-1] = last.model_copy(
                    update={"arguments": last.arguments + piece.arguments})
            else:
                self.tool_calls.append(piece)


class StreamParser(Protocol):
    def feed(self, event: str | None, data: str) -> bool:
        """One SSE frame; returns True when it carried output (text or a tool call). Raises
        ProviderError for an error frame or a frame that is not JSON."""

    def take_delta(self) -> StreamDelta:
        """The output fed since the previous call (empty when none), handed out once."""

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
