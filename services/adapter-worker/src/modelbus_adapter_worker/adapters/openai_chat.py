"""OpenAI Chat Completions (``POST {base}/chat/completions``), also spoken by vLLM and
Ollama (``selfhosted``). What is sent is decided in
:mod:`~modelbus_adapter_worker.adapters.normalize_openai`.

Streams ask for ``stream_options.include_usage`` so the last chunk (empty ``choices``)
carries token usage; a stream is complete only when a finish reason arrived and
``data: [DONE]`` closed it. Streamed tool calls arrive in fragments keyed by ``index``.
A structured-output refusal (``refusal`` instead of ``content``) is the text, with finish
reason ``content_filter``.
"""

from __future__ import annotations

import orjson
from modelbus_schemas import TaskEvent

from modelbus_adapter_worker.adapters import Completion, HttpRequest, StreamDelta
from modelbus_adapter_worker.adapters.normalize_openai import (
    ToolCallAssembler,
    body_fields,
    messages_of,
    tool_calls_of,
)
from modelbus_adapter_worker.errors import (
    ProviderError,
    from_error_body,
    malformed,
    truncated,
)

FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter",
          "tool_calls": "tool_calls", "function_call": "tool_calls"}
_BAD_BODY = (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError,
             AttributeError)


def _finish(value: str | None) -> str:
    return FINISH.get(value or "", "other")


class OpenAIChatAdapter:
    def __init__(self, api_key: str | None, *, system: str = "openai",
                 max_tokens_field: str = "max_completion_tokens",
                 organization: str | None = None) -> None:
        self.system = system
        self.max_tokens_field = max_tokens_field
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        if organization:
            self._headers["OpenAI-Organization"] = organization

    def build(self, task: TaskEvent, *, stream: bool = False) -> HttpRequest:
        body: dict = {"model": task.model, "messages": messages_of(task)}
        body.update(body_fields(task, system=self.system,
                                max_tokens_field=self.max_tokens_field))
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return HttpRequest("POST", "/chat/completions", body, self._headers, stream)

    def parse(self, body: bytes, request: HttpRequest | None = None) -> Completion:
        try:
            data = orjson.loads(body)
            choice = data["choices"][0]
            message = choice["message"]
            usage = data.get("usage") or {}
            refused = message.get("refusal") and not message.get("content")
            return Completion(
                text=message.get("content") or message.get("refusal") or "",
                finish_reason="content_filter" if refused else _finish(
                    choice.get("finish_reason")),
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                response_model=data.get("model"),
                tool_calls=tool_calls_of(message.get("tool_calls")),
            )
        except _BAD_BODY as exc:
            raise malformed(exc.__class__.__name__) from None

    def stream_parser(self, request: HttpRequest | None = None) -> OpenAIStream:
        return OpenAIStream()

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        return from_error_body(status, headers, body)


class OpenAIStream:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.tools = ToolCallAssembler()
        self.reason: str | None = None
        self.usage: dict = {}
        self.model: str | None = None
        self.done = False
        self.pending = StreamDelta()

    def feed(self, event: str | None, data: str) -> bool:
        if data == "[DONE]":
            self.done = True
            return False
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("stream frame is not JSON") from None
        if not isinstance(chunk, dict):
            raise malformed("stream frame is not an object")
        if "error" in chunk:
            err = chunk["error"] or {}
            raise ProviderError(f"stream error: {err.get('message', '')}", retryable=True,
                                code="stream_error")
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        got_output = False
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
                self.pending.text += delta["content"]
                got_output = True
            if delta.get("refusal"):
                self.refusal.append(delta["refusal"])
                if not self.text:  # the refusal is the answer only when no content came
                    self.pending.text += delta["refusal"]
                got_output = True
            if delta.get("tool_calls"):
                try:
                    fragments = self.tools.feed(delta["tool_calls"])
                except (ValueError, TypeError, AttributeError) as exc:
                    raise malformed(f"streamed tool call: {exc.__class__.__name__}") from None
                self.pending.tool_calls.extend(fragments)
                got_output = True
            if choice.get("finish_reason"):
                self.reason = choice["finish_reason"]
        return got_output

    def take_delta(self) -> StreamDelta:
        delta, self.pending = self.pending, StreamDelta()
        return delta

    def finish(self) -> Completion:
        if not self.done or self.reason is None:
            raise truncated("no finish reason" if self.reason is None else "no [DONE]")
        try:
            calls = self.tools.calls()
        except ValueError as exc:
            raise malformed(f"streamed tool call: {exc.__class__.__name__}") from None
        refused = self.refusal and not self.text
        return Completion(
            text="".join(self.text or self.refusal),
            finish_reason="content_filter" if refused else _finish(self.reason),
            input_tokens=int(self.usage.get("prompt_tokens", 0)),
            output_tokens=int(self.usage.get("completion_tokens", 0)),
            response_model=self.model, tool_calls=calls,
        )
