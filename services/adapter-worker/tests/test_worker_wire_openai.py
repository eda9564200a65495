"""OpenAI Chat Completions and self-hosted wire bodies, exactly as sent, for tools, tool
turns, images, JSON output and every normalisation row of the provider table; tool calls
read back whole and from stream fragments."""

from __future__ import annotations

import orjson
import pytest
from modelbus_adapter_worker.adapters import build_adapter
from worker_wire_helpers import JSON_SCHEMA_FORMAT, PNG, SCHEMA, TOOL_TURNS, WEATHER, feed, task

WEATHER_WIRE = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": WEATHER["parameters"]}}


def build(t, provider="openai"):
    return build_adapter(provider, "sk").build(t).json


def test_worker_openai_tools_and_tool_turns_exact_body():
    body = build(task(messages=TOOL_TURNS, params={
        "tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False}))
    assert body == {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'},
        ],
        "tools": [WEATHER_WIRE],
        "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_worker_openai_tool_choice_strings(choice):
    assert build(task(params={"tools": [WEATHER], "tool_choice": choice}))["tool_choice"] == choice


def test_worker_openai_tool_choice_none_without_tools_is_not_sent():
    assert "tool_choice" not in build(task(params={"tool_choice": "none"}))


def test_worker_openai_images_as_image_url_parts():
    body = build(task(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "data": PNG, "media_type": "image/png"},
        {"type": "image", "url": "https://x.test/a.jpg", "detail": "low"}]}]))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg", "detail": "low"}},
    ]}]


def test_worker_openai_json_schema_response_format():
    body = build(task(params={"response_format": JSON_SCHEMA_FORMAT}))
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "count", "schema": SCHEMA, "strict": True}}


def test_worker_openai_json_object_adds_the_word_json_only_when_missing():
    body = build(task(params={"response_format": {"type": "json_object"}}))
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": "Answer with a JSON object."}
    body = build(task(messages=[{"role": "user", "content": "Reply in JSON"}],
                      params={"response_format": {"type": "json_object"}}))
    assert body["messages"] == [{"role": "user", "content": "Reply in JSON"}]


# -- the provider table -------------------------------------------------------------------

STOPS = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("provider", ["openai", "selfhosted"])
def test_worker_openai_five_stops_send_the_first_four(provider):
    body = build(task(provider, "m", params={"stop": STOPS}), provider)
    assert body["stop"] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("model", ["o3-mini", "o1", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini"])
def test_worker_openai_reasoning_models_take_no_sampling_params(model):
    body = build(task(model=model, params={"temperature": 0.3, "top_p": 0.9, "max_tokens": 50,
                                           "stop": ["x"]}))
    assert body == {"model": model, "messages": [{"role": "user", "content": "Hi"}],
                    "max_completion_tokens": 50}


def test_worker_openai_chat_models_keep_sampling_params():
    body = build(task(model="gpt-5-chat-latest", params={"temperature": 0.3, "max_tokens": 5}))
    assert body["temperature"] == 0.3 and body["max_completion_tokens"] == 5


def test_worker_selfhosted_classic_params_even_for_reasoning_names():
    body = build(task("selfhosted", "o3-mini", params={"temperature": 0.3, "max_tokens": 5}),
                 "selfhosted")
    assert body["temperature"] == 0.3 and body["max_tokens"] == 5


@pytest.mark.parametrize("messages", [
    [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "system", "content": "Only a system"}],
    [{"role": "user", "content": ""}],
])
def test_worker_openai_accepts_role_order_and_empty_content_as_is(messages):
    body = build(task(messages=messages))
    assert [m["role"] for m in body["messages"]] == [m["role"] for m in messages]


# -- answers ------------------------------------------------------------------------------

def test_worker_openai_parse_tool_calls():
    body = {"model": "gpt-4o", "choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    c = build_adapter("openai", "k").parse(orjson.dumps(body))
    assert c.finish_reason == "tool_calls" and c.text == ""
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [
        ("call_9", "get_weather", '{"city":"Oslo"}')]


def test_worker_openai_stream_assembles_tool_call_fragments_by_index():
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"ci'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '{"city":'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": '"Oslo"}'}},
            {"index": 1, "function": {"arguments": 'ty":"Rome"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}},
    ]
    raw = "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in chunks) + "data: [DONE]\n\n"
    c = feed(build_adapter("openai", "k").stream_parser(), raw)
    assert c.finish_reason == "tool_calls" and c.output_tokens == 9
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Oslo"}'),
        ("call_b", "get_weather", '{"city":"Rome"}')]


def test_worker_openai_structured_output_refusal_is_content_filter():
    body = {"choices": [{"finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    c = build_adapter("openai", "k").parse(orjson.dumps(body))
    assert (c.text, c.finish_reason) == ("I can't help with that.", "content_filter")


def test_worker_openai_empty_stop_strings_are_not_sent():
    assert build(task(params={"stop": ["", "a", "", "b", "c", "d", "e"]}))["stop"] == [
        "a", "b", "c", "d"]
    assert "stop" not in build(task(params={"stop": [""]}))


LOOSE = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {
    "type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}}


def test_worker_openai_strict_only_for_schemas_strict_mode_takes():
    from modelbus_adapter_worker.adapters.normalize_openai import strict_ready

    assert strict_ready(SCHEMA) and not strict_ready(LOOSE)
    closed = {"type": "object", "additionalProperties": False, "required": ["n", "tags"],
              "properties": {"n": {"type": "integer"}, "tags": {"type": "array", "items": {
                  "type": "object", "additionalProperties": False, "required": ["k"],
                  "properties": {"k": {"type": "string"}}}}}}
    assert strict_ready(closed)
    assert not strict_ready({**closed, "$defs": {"x": LOOSE}})
    loose_format = {"type": "json_schema", "json_schema": {"name": "l", "schema": LOOSE,
                                                            "strict": True}}
    body = build(task(params={"response_format": loose_format, "tools": [
        {**WEATHER, "strict": True}, {"name": "loose", "parameters": LOOSE, "strict": True}]}))
    assert body["response_format"]["json_schema"]["strict"] is False
    assert [t["function"]["strict"] for t in body["tools"]] == [False, False]
    body = build(task(params={"response_format": JSON_SCHEMA_FORMAT, "tools": [
        {"name": "closed", "parameters": closed, "strict": True}]}))
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["tools"][0]["function"]["strict"] is True
