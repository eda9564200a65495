"""OpenAI ``chat.completion.chunk`` SSE frames of one ``stream=true`` call.

:class:`ChunkStream` renders a call as it streams: :meth:`~ChunkStream.opening` (the
``role: assistant`` chunk), then :meth:`~ChunkStream.delta` for each stream event (text as
``content`` deltas; tool-call fragments as ``tool_calls`` deltas — ``index``, ``id``,
``type: function`` and ``function.name`` on a call's first fragment, ``function.arguments``
pieces after), then :meth:`~ChunkStream.closing` with the final response, the source of
truth: what it holds beyond what streamed is sent as the remainder (all of it when nothing
streamed: the text cut into ``chunk_chars`` pieces), then the chunk with ``finish_reason``,
the usage chunk (empty ``choices``) when ``stream_options.include_usage`` asked for it, and
``data: [DONE]``.

A failure after the stream began — a stream event of kind ``error``, an error response, a
deadline — ends it with OpenAI's error event, ``data: {"error": {...}}``, and no
``[DONE]`` (:meth:`~ChunkStream.failure`); so does a final response that does not continue
what streamed (``code`` ``stream_diverged``): a stream never ends silently truncated or
different from the response.
"""

from __future__ import annotations

import json

import orjson
from modelbus_schemas import ResponseEvent, StreamEvent, ToolCall

from modelbus_gateway.errors import GatewayError, from_error_info
from modelbus_gateway.openai_messages import tool_calls_wire
from modelbus_gateway.openai_wire import openai_finish, usage_wire

DONE = b"data: [DONE]\n\n"


def diverged() -> GatewayError:
    return GatewayError(502, "the final response does not continue the streamed output; "
                        "the streamed output is not the answer", "api_error", "stream_diverged")


def _sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _same_json(streamed: str, final: str) -> bool:
    try:
        return json.loads(streamed) == json.loads(final)
    except ValueError:
        return False


class ChunkStream:
    def __init__(self, call_id: str, created: int, model: str, include_usage: bool,
                 chunk_chars: int = 64) -> None:
        self.head: dict = {"id": call_id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": None}
        if include_usage:
            self.head["usage"] = None
        self.include_usage = include_usage
        self.chunk_chars = chunk_chars
        self.text = ""  # the text streamed so far
        self.tools: dict[int, list] = {}  # index → [id, name, arguments] streamed so far

    def _frame(self, delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**self.head, "choices": [choice]})

    def opening(self) -> bytes:
        return self._frame({"role": "assistant", "content": ""})

    def delta(self, event: StreamEvent) -> list[bytes]:
        """The chunks of one stream event (none when it carries no output)."""
        frames = []
        if event.text:
            self.text += event.text
            frames.append(self._frame({"content": event.text}))
        if event.tool_calls:
            frames.append(self._frame({"tool_calls": [
                self._fragment(d.index, d.id, d.name, d.arguments) for d in event.tool_calls]}))
        return frames

    def _fragment(self, index: int, call_id: str | None, name: str | None,
                  arguments: str) -> dict:
        known = self.tools.get(index)
        if known is None:
            self.tools[index] = [call_id, name, arguments]
            return {"index": index, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments}}
        fragment: dict = {"index": index}
        if call_id and not known[0]:
            known[0] = fragment["id"] = call_id
        function: dict = {"arguments": arguments}
        if name and not known[1]:
            known[1] = function["name"] = name
        known[2] += arguments
        fragment["function"] = function
        return fragment

    def failure(self, error: GatewayError) -> bytes:
        """OpenAI's error event; the stream ends after it."""
        return _sse(error.body())

    def closing(self, response: ResponseEvent) -> list[bytes]:
        """The rest of the answer from the final response, then finish, usage, [DONE]; an
        error event for an error response."""
        if response.status == "error":
            return [self.failure(from_error_info(response.error))]
        text = response.output or ""
        if not text.startswith(self.text):
            if text.strip() != self.text.strip():
                return [self.failure(diverged())]
            text = self.text
        frames = [self._frame({"content": text[i:i + self.chunk_chars]})
                  for i in range(len(self.text), len(text), self.chunk_chars)]
        tools = self._tool_rest(response.tool_calls or [])
        if tools is None:
            return frames + [self.failure(diverged())]
        frames += [self._frame({"tool_calls": [fragment]}) for fragment in tools]
        frames.append(self._frame({}, openai_finish(response)))
        if self.include_usage:
            frames.append(_sse({**self.head, "choices": [], "usage": usage_wire(response)}))
        frames.append(DONE)
        return frames

    def _tool_rest(self, calls: list[ToolCall]) -> list[dict] | None:
        """The fragments that complete the streamed tool calls into ``calls``; None when
        what streamed is not a beginning of them."""
        if any(index >= len(calls) for index in self.tools):
            return None
        rest = []
        for index, (call, wire) in enumerate(zip(calls, tool_calls_wire(calls), strict=True)):
            known = self.tools.get(index)
            if known is None:
                rest.append({"index": index, **wire})
                continue
            call_id, name, arguments = known
            if (call_id and call_id != call.id) or (name and name != call.name):
                return None
            if call.arguments.startswith(arguments):
                remainder = call.arguments[len(arguments):]
            elif _same_json(arguments, call.arguments):
                remainder = ""
            else:
                return None
            if remainder or not call_id or not name:
                rest.append(self._fragment(index, call.id, call.name, remainder))
        return rest


def stream_frames(response: ResponseEvent, call_id: str, created: int, model: str,
                  include_usage: bool, chunk_chars: int = 64) -> list[bytes]:
    """A whole stream from the final response alone (nothing streamed): role chunk,
    content chunks, tool calls, finish chunk, optional usage chunk, [DONE]."""
    chunks = ChunkStream(call_id, created, model, include_usage, chunk_chars)
    return [chunks.opening(), *chunks.closing(response)]
