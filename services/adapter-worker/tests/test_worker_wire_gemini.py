"""Gemini generateContent wire bodies, exactly as sent: functionDeclarations, functionCall
and functionResponse parts (the response named from the earlier call), toolConfig modes,
inlineData / fileData, JSON output, and every normalisation row of the provider table;
function calls read back with stable ids, whole and streamed."""

from __future__ import annotations

import orjson
import pytest
from modelbus_adapter_worker.adapters import build_adapter
from modelbus_adapter_worker.adapters.wire import EMPTY_TURN
from worker_wire_helpers import JSON_SCHEMA_FORMAT, PNG, SCHEMA, TOOL_TURNS, WEATHER, feed
from worker_wire_helpers import task as base_task

MODEL = "gemini-2.5-flash"


def task(messages=None, **kw):
    return base_task("gemini", MODEL, messages, **kw)


def build(t, stream=False):
    return build_adapter("gemini", "gk").build(t, stream=stream)


def test_worker_gemini_tools_and_tool_turns_exact_body():
    req = build(task(TOOL_TURNS, params={"tools": [WEATHER], "tool_choice": "auto",
                                         "parallel_tool_calls": True}))
    assert req.path == f"/models/{MODEL}:generateContent"
    assert req.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]},
        ],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather of a city",
             "parametersJsonSchema": WEATHER["parameters"]}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }


def test_worker_gemini_function_response_uses_the_message_name_and_wraps_plain_text():
    turns = [*TOOL_TURNS[:2], {"role": "tool", "tool_call_id": "call_1", "name": "other_fn",
                               "content": "sunny"}]
    body = build(task(turns)).json
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "other_fn", "response": {"result": "sunny"}}}]


def test_worker_gemini_tool_turn_answering_an_unknown_call_is_invalid():
    with pytest.raises(ValueError, match="no earlier assistant turn"):
        build(task([{"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "nope", "content": "1"}]))


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "name": "get_weather"},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_worker_gemini_function_calling_modes(choice, config):
    body = build(task(params={"tools": [WEATHER], "tool_choice": choice})).json
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_worker_gemini_images_as_inline_and_file_data():
    body = build(task([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "data": PNG, "media_type": "image/png"},
        {"type": "image", "url": f"data:image/jpeg;base64,{PNG}"},
        {"type": "image", "url": "https://x.test/a.webp?x=1"}]}])).json
    assert body["contents"] == [{"role": "user", "parts": [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "image/jpeg", "data": PNG}},
        {"fileData": {"fileUri": "https://x.test/a.webp?x=1", "mimeType": "image/webp"}}]}]


def test_worker_gemini_json_schema_output():
    body = build(task(params={"response_format": JSON_SCHEMA_FORMAT, "max_tokens": 9})).json
    assert body["generationConfig"] == {"maxOutputTokens": 9,
                                        "responseMimeType": "application/json",
                                        "responseJsonSchema": SCHEMA}


def test_worker_gemini_json_with_tools_goes_in_the_system_instruction():
    body = build(task(params={"tools": [WEATHER], "response_format": JSON_SCHEMA_FORMAT})).json
    assert "generationConfig" not in body
    assert body["systemInstruction"]["parts"][0]["text"].startswith("Answer with a single JSON")


# -- the provider table -------------------------------------------------------------------

def test_worker_gemini_six_stops_send_the_first_five():
    body = build(task(params={"stop": ["a", "b", "c", "d", "e", "f"]})).json
    assert body["generationConfig"] == {"stopSequences": ["a", "b", "c", "d", "e"]}


def test_worker_gemini_system_only_becomes_the_user_turn():
    body = build(task([{"role": "system", "content": "Only a system"}])).json
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Only a system"}]}]}


def test_worker_gemini_empty_content_is_dropped_and_roles_merged():
    body = build(task([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                       {"role": "assistant", "content": ""},
                       {"role": "user", "content": [{"type": "text", "text": ""},
                                                    {"type": "text", "text": "R"}]}])).json
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Q"}, {"text": "R"}]}],
                    "systemInstruction": {"parts": [{"text": "S"}]}}
    body = build(task([{"role": "user", "content": ""}])).json
    assert body["contents"] == [{"role": "user", "parts": [{"text": EMPTY_TURN}]}]


def test_worker_gemini_assistant_turns_are_model_turns():
    body = build(task([{"role": "assistant", "content": "Hello!"},
                       {"role": "user", "content": "Hi"}])).json
    assert [c["role"] for c in body["contents"]] == ["model", "user"]


# -- answers ------------------------------------------------------------------------------

CALLS = {"candidates": [{"finishReason": "STOP", "content": {"role": "model", "parts": [
    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}}],
    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6},
    "modelVersion": MODEL}


def test_worker_gemini_function_calls_get_stable_ids():
    adapter = build_adapter("gemini", "k")
    first = adapter.parse(orjson.dumps(CALLS))
    again = adapter.parse(orjson.dumps(CALLS))
    assert first.finish_reason == "tool_calls"
    assert [(t.name, t.arguments) for t in first.tool_calls] == [
        ("get_weather", '{"city":"Oslo"}'), ("get_weather", '{"city":"Rome"}')]
    ids = [t.id for t in first.tool_calls]
    assert ids == [t.id for t in again.tool_calls] and len(set(ids)) == 2


def test_worker_gemini_stream_collects_whole_function_calls():
    one = {"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]}}]}
    two = {**CALLS, "candidates": [{"finishReason": "STOP", "content": {"parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]}}]}
    raw = "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in (one, two))
    c = feed(build_adapter("gemini", "k").stream_parser(), raw)
    whole = build_adapter("gemini", "k").parse(orjson.dumps(CALLS))
    assert c.finish_reason == "tool_calls" and c.output_tokens == 6
    assert [t.model_dump() for t in c.tool_calls] == [t.model_dump() for t in whole.tool_calls]


@pytest.mark.parametrize(("model", "signed"), [
    ("gemini-3-pro-preview", True), ("gemini-3.1-flash", True), ("gemini-2.5-pro", False)])
def test_worker_gemini_3_function_call_turns_carry_the_signature_bypass(model, signed):
    turns = [TOOL_TURNS[0], {**TOOL_TURNS[1], "tool_calls": [
        {"id": "a", "name": "get_weather", "arguments": "{}"},
        {"id": "b", "name": "get_weather", "arguments": "{}"}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"}]
    parts = build(base_task("gemini", model, turns)).json["contents"][1]["parts"]
    expected = [{"functionCall": {"name": "get_weather", "args": {}}},
                {"functionCall": {"name": "get_weather", "args": {}}}]
    if signed:
        expected[0]["thoughtSignature"] = "skip_thought_signature_validator"
    assert parts == expected
