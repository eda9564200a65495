"""Anthropic Messages (``POST {base}/messages``, base ``https://api.anthropic.com/v1``).
What is sent is decided in :mod:`~modelbus_adapter_worker.adapters.normalize_anthropic`.

``max_tokens`` is required, every call carries ``x-api-key`` and ``anthropic-version``, and
the answer is a list of content blocks: ``text`` and ``tool_use`` (a tool call; the forced
JSON tool's input is the JSON answer instead). A stream is complete only when
``message_stop`` arrived; ``message_delta`` carries the stop reason and the output tokens,
``message_start`` the input tokens; a ``tool_use`` block streams its input as
``input_json_delta`` fragments; an ``error`` event (e.g. ``overloaded_error``) is a
retryable failure.

Stream deltas: text deltas as text; a caller's tool call as a fragment with its id and
name when its block starts, then its ``input_json_delta`` pieces, numbered 0, 1, ... in
the order the calls began (content block indexes also count text blocks). The forced JSON
tool's input is not streamed: the answer text it becomes is only known whole.
"""

from __future__ import annotations

import orjson
from modelbus_schemas import TaskEvent
from modelbus_schemas.content import ToolCall
from modelbus_schemas.stream import ToolCallDelta

from modelbus_adapter_worker.adapters import Completion, HttpRequest, StreamDelta
from modelbus_adapter_worker.adapters.normalize_anthropic import body_of
from modelbus_adapter_worker.adapters.wire import dumps
from modelbus_adapter_worker.errors import (
    ProviderError,
    from_error_body,
    malformed,
    truncated,
)

API_VERSION = "2023-06-01"
STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
        "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "other"}
RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}
_BAD_BODY = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError)


def _stop(value: str | None) -> str:
    return STOP.get(value or "", "other")


def _answer(blocks: list[dict], stop_reason: str | None, meta: dict) -> tuple[str, str, list]:
    """(text, finish reason, tool calls) of the answer's content blocks."""
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = []
    for block in blocks:
        if block.get("type") != "tool_use":
            continue
        value = block.get("input") or {}
        raw = block.get("input_raw")  # cut at max_tokens: the JSON text as far as it came
        if meta.get("json_tool") and block.get("name") == meta["json_tool"]:
            text = raw if raw is not None else dumps(
                value.get("value") if meta.get("json_wrapped") else value)
            stop_reason = "end_turn" if stop_reason == "tool_use" else stop_reason
            continue
        calls.append(ToolCall(id=block["id"], name=block["name"],
                              arguments=raw if raw is not None else dumps(value)))
    return text, _stop(stop_reason), calls


class AnthropicMessagesAdapter:
    system = "anthropic"

    def __init__(self, api_key: str, *, default_max_tokens: int = 1024,
                 api_version: str = API_VERSION) -> None:
        self.default_max_tokens = default_max_tokens
        self._headers = {"x-api-key": api_key, "anthropic-version": api_version,
                         "Content-Type": "application/json"}

    def build(self, task: TaskEvent, *, stream: bool = False) -> HttpRequest:
        body, meta = body_of(task, default_max_tokens=self.default_max_tokens)
        if stream:
            body["stream"] = True
        return HttpRequest("POST", "/messages", body, self._headers, stream, meta)

    def parse(self, body: bytes, request: HttpRequest | None = None) -> Completion:
        try:
            data = orjson.loads(body)
            text, finish, calls = _answer(data["content"], data.get("stop_reason"),
                                          request.meta if request else {})
            usage = data.get("usage") or {}
            return Completion(
                text=text, finish_reason=finish,
                input_tokens=int(usage.get("input_tokens", 0)),
                output_tokens=int(usage.get("output_tokens", 0)),
                response_model=data.get("model"), tool_calls=calls or None,
            )
        except _BAD_BODY as exc:
            raise malformed(exc.__class__.__name__) from None

    def stream_parser(self, request: HttpRequest | None = None) -> AnthropicStream:
        return AnthropicStream(request.meta if request else {})

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        return from_error_body(status, headers, body)


class AnthropicStream:
    def __init__(self, meta: dict | None = None) -> None:
        self.meta = meta or {}
        self.blocks: dict[int, dict] = {}
        self.json_parts: dict[int, list[str]] = {}
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.stopped = False
        self.pending = StreamDelta()
        self.call_numbers: dict[int, int] = {}  # content block index -> tool call number

    def feed(self, event: str | None, data: str) -> bool:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("stream frame is not JSON") from None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "content_block_start":
            block = dict(frame.get("content_block") or {})
            index = int(frame.get("index", len(self.blocks)))
            self.blocks[index] = block
            return self._call_started(index, block)
        elif kind == "content_block_delta":
            return self._delta(int(frame.get("index", 0)), frame.get("delta") or {})
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

    def _call_started(self, index: int, block: dict) -> bool:
        if block.get("type") != "tool_use" or block.get("name") == self.meta.get("json_tool"):
            return False
        number = self.call_numbers[index] = len(self.call_numbers)
        try:
            self.pending.tool_calls.append(ToolCallDelta(
                index=number, id=block.get("id"), name=block.get("name")))
        except ValueError:
            raise malformed("streamed tool_use block") from None
        return True

    def _delta(self, index: int, delta: dict) -> bool:
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        if delta.get("type") == "text_delta" and delta.get("text"):
            block["text"] = block.get("text", "") + delta["text"]
            self.pending.text += delta["text"]
            return True
        if delta.get("type") == "input_json_delta":
            piece = delta.get("partial_json") or ""
            self.json_parts.setdefault(index, []).append(piece)
            if index in self.call_numbers and piece:
                self.pending.add(StreamDelta(tool_calls=[ToolCallDelta(
                    index=self.call_numbers[index], arguments=piece)]))
            return True
        return False

    def take_delta(self) -> StreamDelta:
        delta, self.pending = self.pending, StreamDelta()
        return delta

    def finish(self) -> Completion:
        if not self.stopped:
            raise truncated("no message_stop")
        blocks = []
        for index, block in sorted(self.blocks.items()):
            if block.get("type") == "tool_use" and index in self.json_parts:
                raw = "".join(self.json_parts[index]).strip() or "{}"
                try:
                    block = {**block, "input": orjson.loads(raw)}
                except orjson.JSONDecodeError:
                    if self.stop_reason != "max_tokens":
                        raise malformed("streamed tool input is not JSON") from None
                    block = {**block, "input_raw": raw}
            blocks.append(block)
        try:
            text, finish, calls = _answer(blocks, self.stop_reason, self.meta)
        except _BAD_BODY as exc:
            raise malformed(exc.__class__.__name__) from None
        return Completion(
            text=text, finish_reason=finish, input_tokens=self.input_tokens,
            output_tokens=self.output_tokens, response_model=self.model,
            tool_calls=calls or None,
        )
