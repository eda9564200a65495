"""Anthropic Messages (``POST {base}/messages``, base ``https://api.anthropic.com/v1``).

The system prompt is the top-level ``system`` field, ``max_tokens`` is required, every call
carries ``x-api-key`` and ``anthropic-version``, and the answer is a list of content blocks.
A stream is complete only when ``message_stop`` arrived; ``message_delta`` carries the stop
reason and the output tokens, ``message_start`` the input tokens; an ``error`` event (e.g.
``overloaded_error``) is a retryable failure.
"""

from __future__ import annotations

import orjson
from modelbus_schemas import TaskEvent

from modelbus_adapter_worker.adapters import Completion, HttpRequest
from modelbus_adapter_worker.errors import (
    ProviderError,
    from_error_body,
    malformed,
    truncated,
)
from modelbus_adapter_worker.prompt import prompt_of

API_VERSION = "2023-06-01"
STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
        "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "other"}
RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}


def _stop(value: str | None) -> str:
    return STOP.get(value or "", "other")


class AnthropicMessagesAdapter:
    system = "anthropic"

    def __init__(self, api_key: str, *, default_max_tokens: int = 1024,
                 api_version: str = API_VERSION) -> None:
        self.default_max_tokens = default_max_tokens
        self._headers = {"x-api-key": api_key, "anthropic-version": api_version,
                         "Content-Type": "application/json"}

    def build(self, task: TaskEvent, *, stream: bool = False) -> HttpRequest:
        prompt = prompt_of(task)
        params = task.params
        body: dict = {
            "model": task.model,
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "messages": [{"role": role, "content": text} for role, text in prompt.turns],
        }
        if prompt.system:
            body["system"] = prompt.system
        if params.temperature is not None:
            body["temperature"] = min(params.temperature, 1.0)  # Anthropic's range is 0..1
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop_sequences"] = params.stop
        if stream:
            body["stream"] = True
        return HttpRequest("POST", "/messages", body, self._headers, stream)

    def parse(self, body: bytes) -> Completion:
        try:
            data = orjson.loads(body)
            text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
            usage = data.get("usage") or {}
            return Completion(
                text=text, finish_reason=_stop(data.get("stop_reason")),
                input_tokens=int(usage.get("input_tokens", 0)),
                output_tokens=int(usage.get("output_tokens", 0)),
                response_model=data.get("model"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise malformed(exc.__class__.__name__) from None

    def stream_parser(self) -> AnthropicStream:
        return AnthropicStream()

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        return from_error_body(status, headers, body)


class AnthropicStream:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.stopped = False

    def feed(self, event: str | None, data: str) -> bool:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("stream frame is not JSON") from None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "content_block_delta":
            delta = frame.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.text.append(delta["text"])
                return True
        elif kind == "message_start":
            message = frame.get("message") or {}
            self.model = message.get("model")
            self.input_tokens = int((message.get("usage") or {}).get("input_tokens", 0))
        elif kind == "message_delta":
            self.stop_reason = (frame.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = frame.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens", self.output_tokens))
            self.input_tokens = int(usage.get("input_tokens") or self.input_tokens)
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            err = frame.get("error") or {}
            raise ProviderError(
                f"stream error {err.get('type')}: {err.get('message', '')}",
                retryable=err.get("type") in RETRYABLE_STREAM_ERRORS, code="stream_error",
            )
        return False

    def finish(self) -> Completion:
        if not self.stopped:
            raise truncated("no message_stop")
        return Completion(
            text="".join(self.text), finish_reason=_stop(self.stop_reason),
            input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            response_model=self.model,
        )
