"""The SSE chunks of a stream=true call (:mod:`modelbus_gateway.openai_stream`), read back
with the official ``openai`` SDK's chunk model and its own stream accumulator: content
deltas, tool-call fragments, include_usage, the remainder the final response adds to what
streamed, and the error event that ends a stream broken after its first delta."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from modelbus_gateway.errors import from_error_info
from modelbus_gateway.openai_stream import DONE, ChunkStream, stream_frames
from modelbus_schemas import (
    ErrorCode,
    ErrorInfo,
    ResponseEvent,
    StreamEvent,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

NOW = datetime.now(UTC)


def _event(seq: int, text: str = "", kind: str = "delta", tools=(), **extra) -> StreamEvent:
    return StreamEvent(event_id=f"s:{seq}", request_id="gw-1", tenant="t", task="chat",
                       seq=seq, kind=kind, provider="openai", model="m", text=text,
                       tool_calls=list(tools), created_at=NOW, **extra)


def _response(text: str | None, tools=(), finish: str = "stop", status: str = "ok",
              error: ErrorInfo | None = None) -> ResponseEvent:
    return ResponseEvent(event_id="r:response", request_id="gw-1", tenant="t", status=status,
                         output=text, tool_calls=list(tools), finish_reason=finish,
                         usage=Usage(input_tokens=4, output_tokens=6), error=error,
                         created_at=NOW)


def _chunks(frames: list[bytes]) -> list[ChatCompletionChunk]:
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") for f in frames)
    return [ChatCompletionChunk.model_validate_json(f[6:]) for f in frames if f != DONE]


def _run(events: list[StreamEvent], response: ResponseEvent | None = None,
         include_usage: bool = False, chunk_chars: int = 64) -> list[bytes]:
    stream = ChunkStream("chatcmpl-1", 1, "chat", include_usage, chunk_chars)
    frames = [stream.opening()]
    for event in events:
        frames += stream.delta(event)
    if response is not None:
        frames += stream.closing(response)
    return frames


def _accumulated(frames: list[bytes]):
    state = ChatCompletionStreamState()
    for chunk in _chunks(frames):
        state.handle_chunk(chunk)
    return state.get_final_completion()


def test_content_deltas_arrive_one_chunk_per_event_then_finish_and_done():
    frames = _run([_event(0, "Hel"), _event(1, "lo, "), _event(2, "world", kind="end")],
                  _response("Hello, world"))
    assert frames[-1] == DONE
    chunks = _chunks(frames)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Hel", "lo, ", "world"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert all(c.usage is None for c in chunks) and len(chunks) == 5
    assert {c.id for c in chunks} == {"chatcmpl-1"} and {c.model for c in chunks} == {"chat"}
    assert _accumulated(frames).choices[0].message.content == "Hello, world"


def test_tool_call_fragments_assemble_in_the_sdk():
    events = [
        _event(0, tools=[ToolCallDelta(index=0, id="call_a", name="get_weather",
                                       arguments='{"ci')]),
        _event(1, tools=[ToolCallDelta(index=0, arguments='ty":"Oslo"}'),
                         ToolCallDelta(index=1, id="call_b", name="get_time", arguments="{}")]),
    ]
    final = [ToolCall(id="call_a", name="get_weather", arguments='{"city":"Oslo"}'),
             ToolCall(id="call_b", name="get_time", arguments="{}")]
    frames = _run(events, _response(None, final, finish="tool_calls"))
    raw = [orjson.loads(f[6:]) for f in frames[1:3]]
    first = raw[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {"index": 0, "id": "call_a", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"ci'}}
    assert raw[1]["choices"][0]["delta"]["tool_calls"][0] == {
        "index": 0, "function": {"arguments": 'ty":"Oslo"}'}}
    assert len(frames) == 5, "nothing to add at the end: finish, [DONE]"
    message = _accumulated(frames).choices[0].message
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Oslo"}'), ("call_b", "get_time", "{}")]


def test_include_usage_adds_a_usage_chunk_with_empty_choices_before_done():
    frames = _run([_event(0, "ok")], _response("ok"), include_usage=True)
    chunks = _chunks(frames)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 10
    assert chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])
    assert frames[-1] == DONE


def test_the_final_response_supplies_what_did_not_stream():
    frames = _run([_event(0, "The answer ")], _response("The answer is forty-two."),
                  chunk_chars=5)
    chunks = _chunks(frames)
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == [
        "The answer ", "is fo", "rty-t", "wo."]
    assert _accumulated(frames).choices[0].message.content == "The answer is forty-two."


def test_a_tool_call_that_streamed_in_part_is_completed_from_the_response():
    events = [_event(0, tools=[ToolCallDelta(index=0, id="c1", name="f", arguments='{"a"')])]
    final = [ToolCall(id="c1", name="f", arguments='{"a": 1}'),
             ToolCall(id="c2", name="g", arguments="{}")]
    frames = _run(events, _response(None, final, finish="tool_calls"))
    calls = _accumulated(frames).choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("c1", "f", '{"a": 1}'), ("c2", "g", "{}")]


def test_nothing_streamed_falls_back_to_chunks_of_the_response():
    frames = stream_frames(_response("abcdefghij"), "chatcmpl-1", 1, "chat", True, 4)
    assert frames == _run([], _response("abcdefghij"), include_usage=True, chunk_chars=4)
    chunks = _chunks(frames)
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["abcd", "efgh", "ij"]


def _error(frame: bytes) -> dict:
    body = orjson.loads(frame[6:])
    assert set(body) == {"error"}
    return body["error"]


def test_an_error_event_after_deltas_ends_the_stream_with_an_openai_error():
    stream = ChunkStream("chatcmpl-1", 1, "chat", False)
    frames = [stream.opening(), *stream.delta(_event(0, "partial ans"))]
    broken = ErrorInfo(code=ErrorCode.STREAM_INTERRUPTED, message="provider stream broke")
    frames.append(stream.failure(from_error_info(broken)))
    error = _error(frames[-1])
    assert error["code"] == "stream_interrupted" and error["message"] == "provider stream broke"
    assert error["type"] == "api_error"
    assert DONE not in frames


def test_an_error_response_after_deltas_is_an_error_event_not_a_finish():
    broken = ErrorInfo(code=ErrorCode.STREAM_INTERRUPTED, message="cut after 3 deltas")
    frames = _run([_event(0, "Hel")], _response(None, status="error", error=broken))
    assert _error(frames[-1])["code"] == "stream_interrupted"
    assert DONE not in frames
    assert not any(b'"finish_reason":"stop"' in f for f in frames)


@pytest.mark.parametrize("final", ["Goodbye", "He"])
def test_a_response_that_does_not_continue_the_stream_is_an_error_not_a_silent_switch(final):
    frames = _run([_event(0, "Hello")], _response(final))
    assert _error(frames[-1])["code"] == "stream_diverged"
    assert DONE not in frames


def test_a_tool_call_streamed_differently_from_the_response_is_an_error():
    events = [_event(0, tools=[ToolCallDelta(index=0, id="c1", name="f", arguments='{"a"')])]
    frames = _run(events, _response(None, [ToolCall(id="c1", name="other", arguments="{}")],
                                    finish="tool_calls"))
    assert _error(frames[-1])["code"] == "stream_diverged"
