"""Stream parsers hand out what arrived since they were last asked (``take_delta``): text
and tool-call fragments, each once; the deltas of a stream add up to the completion its
parser finishes with (OpenAI incl. tool-call fragments by index, Anthropic text and
``input_json_delta``, Gemini text and whole function calls)."""

from __future__ import annotations

import orjson
from modelbus_adapter_worker.adapters import StreamDelta, build_adapter
from modelbus_adapter_worker.adapters.sse import SseDecoder
from modelbus_schemas.stream import ToolCallDelta
from worker_wire_helpers import JSON_SCHEMA_FORMAT, sse, task


def _deltas(parser, raw: str) -> list[StreamDelta]:
    """The delta taken after each frame that carried output (as the transport does)."""
    decoder, out = SseDecoder(), []
    for line in raw.splitlines(keepends=True):
        frame = decoder.line(line)
        if frame and parser.feed(*frame):
            out.append(parser.take_delta())
    return out


def _assembled(deltas: list[StreamDelta]) -> tuple[str, list[tuple]]:
    text, calls = "", {}
    for delta in deltas:
        text += delta.text
        for piece in delta.tool_calls:
            call = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = piece.id or call["id"]
            call["name"] = piece.name or call["name"]
            call["arguments"] += piece.arguments
    return text, [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]


def _chunks(*chunks: dict) -> str:
    return "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in chunks)


def test_worker_openai_take_delta_hands_out_text_and_tool_fragments_once():
    raw = _chunks(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Checking"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function",
             "function": {"name": "get_time", "arguments": '{"tz'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"city":'}},
            {"index": 0, "function": {"arguments": '"Oslo"}'}},
            {"index": 1, "function": {"arguments": '":"UTC"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}},
    ) + "data: [DONE]\n\n"
    parser = build_adapter("openai", "k").stream_parser()
    deltas = _deltas(parser, raw)
    assert [d.text for d in deltas] == ["Checking", "", "", ""]
    assert deltas[1].tool_calls == [ToolCallDelta(index=0, id="call_a", name="get_weather")]
    assert deltas[2].tool_calls == [
        ToolCallDelta(index=1, id="call_b", name="get_time", arguments='{"tz')]
    assert [(p.index, p.id, p.arguments) for p in deltas[3].tool_calls] == [
        (0, None, '{"city":'), (0, None, '"Oslo"}'), (1, None, '":"UTC"}')]
    assert not parser.take_delta()  # handed out once
    c = parser.finish()
    assert _assembled(deltas) == (c.text, [(t.id, t.name, t.arguments) for t in c.tool_calls])


def test_worker_openai_take_delta_streams_a_refusal_as_text():
    raw = _chunks(
        {"choices": [{"index": 0, "delta": {"refusal": "I can't "}}]},
        {"choices": [{"index": 0, "delta": {"refusal": "help."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ) + "data: [DONE]\n\n"
    parser = build_adapter("openai", "k").stream_parser()
    deltas = _deltas(parser, raw)
    c = parser.finish()
    assert _assembled(deltas)[0] == c.text == "I can't help."
    assert c.finish_reason == "content_filter"


def _anthropic(kind: str, **fields) -> tuple[str, str]:
    return kind, orjson.dumps({"type": kind, **fields}).decode()


def test_worker_anthropic_take_delta_numbers_tool_calls_apart_from_text_blocks():
    raw = sse(
        _anthropic("message_start", message={"model": "c", "usage": {"input_tokens": 7}}),
        _anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _anthropic("content_block_delta", index=0,
                   delta={"type": "text_delta", "text": "Let me "}),
        _anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "look"}),
        _anthropic("content_block_stop", index=0),
        _anthropic("content_block_start", index=1, content_block={
            "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        _anthropic("content_block_delta", index=1,
                   delta={"type": "input_json_delta", "partial_json": '{"ci'}),
        _anthropic("content_block_delta", index=1,
                   delta={"type": "input_json_delta", "partial_json": 'ty": "Oslo"}'}),
        _anthropic("content_block_stop", index=1),
        _anthropic("message_delta", delta={"stop_reason": "tool_use"},
                   usage={"output_tokens": 12}),
        _anthropic("message_stop"),
    )
    parser = build_adapter("anthropic", "k").stream_parser()
    deltas = _deltas(parser, raw)
    assert [d.text for d in deltas[:2]] == ["Let me ", "look"]
    assert deltas[2].tool_calls == [ToolCallDelta(index=0, id="toolu_1", name="get_weather")]
    assert [p.arguments for d in deltas[3:] for p in d.tool_calls] == ['{"ci', 'ty": "Oslo"}']
    c = parser.finish()
    text, calls = _assembled(deltas)
    assert text == c.text == "Let me look"
    assert calls == [("toolu_1", "get_weather", '{"city": "Oslo"}')]
    assert orjson.loads(calls[0][2]) == orjson.loads(c.tool_calls[0].arguments)


def test_worker_anthropic_take_delta_holds_back_the_forced_json_tool():
    t = task("anthropic", "claude-sonnet-4-5", params={"response_format": JSON_SCHEMA_FORMAT})
    adapter = build_adapter("anthropic", "k")
    request = adapter.build(t, stream=True)
    json_tool = request.meta["json_tool"]
    raw = sse(
        _anthropic("message_start", message={"model": "c", "usage": {"input_tokens": 7}}),
        _anthropic("content_block_start", index=0, content_block={
            "type": "tool_use", "id": "t", "name": json_tool, "input": {}}),
        _anthropic("content_block_delta", index=0,
                   delta={"type": "input_json_delta", "partial_json": '{"n": 12}'}),
        _anthropic("message_delta", delta={"stop_reason": "tool_use"},
                   usage={"output_tokens": 4}),
        _anthropic("message_stop"),
    )
    parser = adapter.stream_parser(request)
    deltas = _deltas(parser, raw)
    assert not any(deltas)  # the answer text is known only whole: nothing streams
    assert parser.finish().text == '{"n":12}'


def test_worker_gemini_take_delta_gives_text_and_whole_function_calls():
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "One "}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "two"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
            "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 6}},
    ]
    parser = build_adapter("gemini", "k").stream_parser()
    deltas = _deltas(parser, _chunks(*chunks))
    assert [d.text for d in deltas] == ["One ", "two", ""]
    assert [(p.index, p.name, p.arguments) for p in deltas[2].tool_calls] == [
        (0, "get_weather", '{"city":"Oslo"}'), (1, "get_weather", '{"city":"Rome"}')]
    c = parser.finish()
    assert _assembled(deltas) == (c.text, [(t.id, t.name, t.arguments) for t in c.tool_calls])


def test_worker_stream_delta_add_joins_fragments_of_one_call():
    delta = StreamDelta("a", [ToolCallDelta(index=0, id="x", name="f", arguments="{")])
    delta.add(StreamDelta("b", [ToolCallDelta(index=0, arguments='"k":'),
                                ToolCallDelta(index=0, arguments="1}"),
                                ToolCallDelta(index=1, id="y", name="g")]))
    assert delta.text == "ab"
    assert delta.tool_calls == [ToolCallDelta(index=0, id="x", name="f", arguments='{"k":1}'),
                                ToolCallDelta(index=1, id="y", name="g")]
    assert not StreamDelta() and StreamDelta("z")
