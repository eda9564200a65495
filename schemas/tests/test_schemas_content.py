"""The richer request contract: content parts, tool calls, response formats, embeddings —
each accepted in its documented shape and refused, with a reason, outside it."""

from __future__ import annotations

import json

import pytest
from modelbus_schemas import DecodeError, RequestEvent, ResponseEvent, ToolCall, decode, encode
from modelbus_schemas.jsonschema import SCHEMA_DIR


def request(**fields) -> dict:
    body = {"request_id": "r1", "task": "t",
            "messages": [{"role": "user", "content": "hello"}]}
    body.update(fields)
    return body


def refused(body: dict, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(RequestEvent, json.dumps(body).encode())


TOOL = {"name": "get_weather", "description": "weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def test_a_two_step_tool_conversation_with_images_round_trips():
    body = request(
        messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "weather where this photo was taken?"},
                {"type": "image", "data": "iVBORw0KGgo=", "media_type": "image/png"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "call_1", "name": "get_weather",
                             "arguments": '{"city": "Paris"}'}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
        ],
        params={"tools": [TOOL], "tool_choice": "auto",
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "answer", "strict": True,
                    "schema": {"type": "object", "properties": {"sky": {"type": "string"}}}}}})
    event = decode(RequestEvent, json.dumps(body).encode())
    assert decode(RequestEvent, encode(event)) == event
    assert json.loads(encode(event))["params"]["response_format"]["json_schema"]["schema"]
    first = event.messages[0]
    assert first.text == "weather where this photo was taken?" and first.image_count() == 1
    assert event.messages[1].tool_calls[0].name == "get_weather"


def test_a_plain_request_v1_body_is_unchanged_and_valid():
    event = decode(RequestEvent, json.dumps(request()).encode())
    assert event.operation == "chat" and event.messages[0].content == "hello"


@pytest.mark.parametrize(("change", "reason"), [
    ({"messages": [{"role": "user"}]}, "content is required"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [
        {"id": "c", "name": "f"}]}]}, "only an assistant"),
    ({"messages": [{"role": "system", "content": [
        {"type": "image", "url": "https://example.com/a.png"}]}]}, "text only"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "url": "https://example.com/a.png", "data": "AAAA",
         "media_type": "image/png"}]}]}, "exactly one of url or data"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "data": "AAAA"}]}]},
     "media_type"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "url": "file:///etc/passwd"}]}]}, "url"),
    ({"params": {"tool_choice": "required"}}, "tool_choice needs tools"),
    ({"params": {"tools": [TOOL], "tool_choice": {"name": "other"}}}, "not in tools"),
    ({"params": {"tools": [TOOL, TOOL]}}, "unique"),
    ({"params": {"tools": [{"name": "9bad"}]}}, "name"),
    ({"params": {"tools": [{"name": "f", "parameters": {"type": "string"}}]}}, "type object"),
    ({"params": {"response_format": {"type": "json_schema"}}}, "json_schema is required"),
    ({"operation": "embed"}, "input and no messages"),
    ({"operation": "embed", "messages": [], "input": []}, "input"),
])
def test_out_of_contract_shapes_are_refused_with_the_reason(change, reason):
    refused(request(**change), reason)


def test_an_embed_request_has_input_and_no_messages():
    event = decode(RequestEvent, json.dumps(
        request(operation="embed", messages=[], input=["a", "b"])).encode())
    assert event.input == ["a", "b"]
    body = {"request_id": "r1", "task": "t", "operation": "embed", "input": ["x"]}
    assert decode(RequestEvent, json.dumps(body).encode()).messages == []


def test_tool_calls_compare_by_canonical_json_of_name_and_arguments():
    a = ToolCall(id="1", name="f", arguments='{"b": 1, "a": [1, 2]}')
    b = ToolCall(id="2", name="f", arguments='{"a":[1,2],"b":1}')
    c = ToolCall(id="3", name="f", arguments='{"a":[2,1],"b":1}')
    assert a.canonical() == b.canonical() != c.canonical()
    assert ToolCall(id="4", name="f", arguments="not json").canonical() != a.canonical()


def test_response_schema_documents_tool_calls_parsed_and_embeddings():
    schema = json.loads((SCHEMA_DIR / "response.v1.schema.json").read_text())
    assert {"tool_calls", "parsed", "embeddings"} <= set(schema["properties"])
    request_schema = json.loads((SCHEMA_DIR / "request.v1.schema.json").read_text())
    assert {"operation", "input"} <= set(request_schema["properties"])
    assert "tool" in json.dumps(request_schema["$defs"]["ChatMessage"])
    assert ResponseEvent.model_fields["embeddings"].default is None
