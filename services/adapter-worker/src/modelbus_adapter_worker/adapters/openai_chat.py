"""OpenAI Chat Completions (``POST {base}/chat/completions``), also spoken by vLLM and
Ollama (``selfhosted``).

Streams ask for ``stream_options.include_usage`` so the last chunk (empty ``choices``)
carries token usage; a stream is complete only when a finish reason arrived and
``data: [DONE]`` closed it.
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

FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter",
          "tool_calls": "tool_calls", "function_call": "tool_calls"}


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
        prompt = prompt_of(task)
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages += [{"role": role, "content": text} for role, text in prompt.turns]
        body: dict = {"model": task.model, "messages": messages}
        params = task.params
        if params.max_tokens is not None:
            body[self.max_tokens_field] = params.max_tokens
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = params.stop
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return HttpRequest("POST", "/chat/completions", body, self._headers, stream)

    def parse(self, body: bytes) -> Completion:
        try:
            data = orjson.loads(body)
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Completion(
                text=choice["message"].get("content") or "",
                finish_reason=_finish(choice.get("finish_reason")),
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                response_model=data.get("model"),
            )
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise malformed(exc.__class__.__name__) from None

    def stream_parser(self) -> OpenAIStream:
        return OpenAIStream()

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        return from_error_body(status, headers, body)


class OpenAIStream:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.reason: str | None = None
        self.usage: dict = {}
        self.model: str | None = None
        self.done = False

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
        got_text = False
        for choice in chunk.get("choices") or ():
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                self.text.append(piece)
                got_text = True
            if choice.get("finish_reason"):
                self.reason = choice["finish_reason"]
        return got_text

    def finish(self) -> Completion:
        if not self.done or self.reason is None:
            raise truncated("no finish reason" if self.reason is None else "no [DONE]")
        return Completion(
            text="".join(self.text), finish_reason=_finish(self.reason),
            input_tokens=int(self.usage.get("prompt_tokens", 0)),
            output_tokens=int(self.usage.get("completion_tokens", 0)),
            response_model=self.model,
        )
