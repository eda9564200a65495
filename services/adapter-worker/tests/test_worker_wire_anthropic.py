"""Anthropic Messages wire bodies, exactly as sent: tool_use / tool_result blocks, image
blocks, JSON output through a forced tool, and every normalisation row of the provider
table (role order, system-only, empty content, temperature range); tool calls and the JSON
answer read back whole and from ``input_json_delta`` fragments."""

from __future__ import annotations

import orjson
import pytest
from modelbus_adapter_worker.adapters import build_adapter
from modelbus_adapter_worker.adapters.normalize_anthropic import JSON_TOOL
from modelbus_adapter_worker.adapters.wire import EMPTY_TURN, LEADING_USER_TURN
from worker_wire_helpers import JSON_SCHEMA_FORMAT, PNG, SCHEMA, TOOL_TURNS, WEATHER, feed, sse
from worker_wire_helpers import task as base_task

MODEL = "claude-sonnet-4-5"


def task(messages=None, **kw):
    return base_task("anthropic", MODEL, messages, **kw)


def build(t, stream=False):
    return build_adapter("anthropic", "ak", default_max_tokens=64).build(t, stream=stream)


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def test_worker_anthropic_tools_and_tool_turns_exact_body():
    body = build(task(TOOL_TURNS, params={"tools": [WEATHER], "tool_choice": "required",
                                          "parallel_tool_calls": False})).json
    assert body == {
        "model": MODEL, "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [text("Weather in Paris?")]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp_c":21}'}]},
        ],
        "tools": [{"name": "get_weather", "description": "Weather of a city",
                   "input_schema": WEATHER["parameters"]}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
])
def test_worker_anthropic_tool_choice(choice, wire):
    assert build(task(params={"tools": [WEATHER], "tool_choice": choice})).json[
        "tool_choice"] == wire


def test_worker_anthropic_tool_results_merge_before_text_in_one_user_turn():
    messages = [
        {"role": "user", "content": "Two cities"},
        {"role": "assistant", "content": "Looking up", "tool_calls": [
            {"id": "a", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"id": "b", "name": "get_weather", "arguments": "not json"}]},
        {"role": "tool", "tool_call_id": "a", "content": "cold"},
        {"role": "tool", "tool_call_id": "b", "content": ""},
        {"role": "user", "content": "and?"},
    ]
    body = build(task(messages, params={"tools": [WEATHER]})).json
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [
            text("Looking up"),
            {"type": "tool_use", "id": "a", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "b", "name": "get_weather",
             "input": {"value": "not json"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "cold"},
            {"type": "tool_result", "tool_use_id": "b"},
            text("and?")]},
    ]


def test_worker_anthropic_image_blocks():
    body = build(task([{"role": "user", "content": [
        {"type": "image", "data": PNG, "media_type": "image/png"},
        {"type": "image", "url": f"data:image/webp;base64,{PNG}"},
        {"type": "image", "url": "https://x.test/a.jpg"},
        text("What is this?")]}])).json
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
        text("What is this?")]}]


def test_worker_anthropic_json_schema_through_a_forced_tool():
    req = build(task(params={"response_format": JSON_SCHEMA_FORMAT}))
    assert req.json["tools"] == [{"name": JSON_TOOL, "description": req.json["tools"][0][
        "description"], "input_schema": SCHEMA}]
    assert req.json["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    answer = {"model": MODEL, "stop_reason": "tool_use", "usage": {}, "content": [
        {"type": "tool_use", "id": "x", "name": JSON_TOOL, "input": {"n": 3}}]}
    c = build_adapter("anthropic", "k").parse(orjson.dumps(answer), req)
    assert (c.text, c.finish_reason, c.tool_calls) == ('{"n":3}', "stop", None)


def test_worker_anthropic_json_array_schema_is_wrapped_and_unwrapped():
    fmt = {"type": "json_schema", "json_schema": {"name": "xs", "schema": {
        "type": "array", "items": {"type": "integer"}}}}
    req = build(task(params={"response_format": fmt}))
    assert req.json["tools"][0]["input_schema"] == {
        "type": "object", "properties": {"value": {"type": "array", "items": {"type": "integer"}}},
        "required": ["value"]}
    answer = {"stop_reason": "tool_use", "content": [
        {"type": "tool_use", "id": "x", "name": JSON_TOOL, "input": {"value": [1, 2]}}]}
    assert build_adapter("anthropic", "k").parse(orjson.dumps(answer), req).text == "[1,2]"


def test_worker_anthropic_json_with_caller_tools_is_asked_for_in_the_system_text():
    body = build(task(params={"tools": [WEATHER],
                              "response_format": {"type": "json_object"}})).json
    assert [t["name"] for t in body["tools"]] == ["get_weather"] and "tool_choice" not in body
    assert body["system"] == "Answer with a single JSON object and nothing else."


# -- the provider table -------------------------------------------------------------------

def test_worker_anthropic_all_stop_sequences_are_sent():
    stops = ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert build(task(params={"stop": stops})).json["stop_sequences"] == stops


def test_worker_anthropic_conversation_starting_with_assistant_gets_a_user_turn():
    body = build(task([{"role": "assistant", "content": "Hello!"},
                       {"role": "user", "content": "Hi"}])).json
    assert body["messages"] == [
        {"role": "user", "content": [text(LEADING_USER_TURN)]},
        {"role": "assistant", "content": [text("Hello!")]},
        {"role": "user", "content": [text("Hi")]}]


def test_worker_anthropic_consecutive_user_turns_are_merged():
    body = build(task([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                       {"role": "assistant", "content": "c"},
                       {"role": "assistant", "content": "d "}])).json
    assert body["messages"] == [
        {"role": "user", "content": [text("a"), text("b")]},
        {"role": "assistant", "content": [text("c"), text("d")]}]  # prefill: no trailing space


def test_worker_anthropic_system_only_becomes_the_user_turn():
    body = build(task([{"role": "system", "content": "Only a system"}])).json
    assert "system" not in body
    assert body["messages"] == [{"role": "user", "content": [text("Only a system")]}]


def test_worker_anthropic_empty_content_is_dropped():
    body = build(task([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                       {"role": "assistant", "content": ""},
                       {"role": "user", "content": [text("  "), text("R")]}])).json
    assert body["system"] == "S"
    assert body["messages"] == [{"role": "user", "content": [text("Q"), text("R")]}]
    body = build(task([{"role": "user", "content": ""}])).json
    assert body["messages"] == [{"role": "user", "content": [text(EMPTY_TURN)]}]


@pytest.mark.parametrize(("given", "sent"), [(1.7, 1.0), (0.4, 0.4), (0.0, 0.0)])
def test_worker_anthropic_temperature_is_clamped_to_one(given, sent):
    body = build(task(params={"temperature": given, "top_p": 0.5})).json
    assert body["temperature"] == sent and "top_p" not in body


def test_worker_anthropic_top_p_alone_is_sent():
    assert build(task(params={"top_p": 0.5})).json["top_p"] == 0.5


# -- answers ------------------------------------------------------------------------------

def test_worker_anthropic_stream_assembles_tool_input_json_deltas():
    def frame(kind, **fields):
        return kind, orjson.dumps({"type": kind, **fields}).decode()

    raw = sse(
        frame("message_start", message={"model": MODEL, "usage": {"input_tokens": 7}}),
        frame("content_block_start", index=0, content_block=text("")),
        frame("content_block_delta", index=0, delta={"type": "text_delta", "text": "Let me"}),
        frame("content_block_stop", index=0),
        frame("content_block_start", index=1, content_block={
            "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        frame("content_block_delta", index=1,
              delta={"type": "input_json_delta", "partial_json": '{"ci'}),
        frame("content_block_delta", index=1,
              delta={"type": "input_json_delta", "partial_json": 'ty": "Oslo"}'}),
        frame("content_block_stop", index=1),
        frame("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 12}),
        frame("message_stop"),
    )
    c = feed(build_adapter("anthropic", "k").stream_parser(), raw)
    assert (c.text, c.finish_reason, c.input_tokens, c.output_tokens) == (
        "Let me", "tool_calls", 7, 12)
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [
        ("toolu_1", "get_weather", '{"city":"Oslo"}')]


def test_worker_anthropic_json_cut_at_max_tokens_is_output_invalid_not_a_retry():
    from modelbus_adapter_worker.executor import TargetRun
    from modelbus_adapter_worker.outcome import result_of
    from modelbus_schemas import ErrorCode

    t = task(params={"response_format": JSON_SCHEMA_FORMAT})
    req = build(t, stream=True)

    def frame(kind, **fields):
        return kind, orjson.dumps({"type": kind, **fields}).decode()

    raw = sse(
        frame("message_start", message={"model": MODEL, "usage": {"input_tokens": 7}}),
        frame("content_block_start", index=0, content_block={
            "type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {}}),
        frame("content_block_delta", index=0,
              delta={"type": "input_json_delta", "partial_json": '{"n": 12'}),
        frame("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": 64}),
        frame("message_stop"),
    )
    c = feed(build_adapter("anthropic", "k").stream_parser(req), raw)
    assert (c.text, c.finish_reason) == ('{"n": 12', "length")
    result = result_of(t, TargetRun("ok", completion=c))
    assert result.error.code == ErrorCode.OUTPUT_INVALID and "token limit" in result.error.message


def test_worker_anthropic_whitespace_stop_sequences_are_enforced_on_the_output():
    from modelbus_adapter_worker.executor import TargetRun
    from modelbus_adapter_worker.outcome import result_of

    t = task(params={"stop": ["\n", "END", " "]})
    assert build(t).json["stop_sequences"] == ["END"]
    only_blank = task(params={"stop": ["\n\n"]})
    assert "stop_sequences" not in build(only_blank).json
    answer = {"stop_reason": "max_tokens", "usage": {}, "content": [text("line one\n\nline two")]}
    c = build_adapter("anthropic", "k").parse(orjson.dumps(answer))
    result = result_of(only_blank, TargetRun("ok", completion=c))
    assert (result.text, result.finish_reason) == ("line one", "stop")
