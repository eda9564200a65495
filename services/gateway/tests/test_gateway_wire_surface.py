"""The OpenAI wire beyond text: image parts, tool calls and tool turns, tools, tool_choice,
response_format, and embeddings — parsed into the contract and rendered back as the official
SDK reads them."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime

import orjson
import pytest
from modelbus_gateway.errors import GatewayError
from modelbus_gateway.openai_embeddings import embeddings_body, parse_embeddings_request
from modelbus_gateway.openai_stream import stream_frames
from modelbus_gateway.openai_wire import completion_body, parse_chat_request
from modelbus_schemas import ImagePart, ResponseEvent, ToolCall, Usage
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 32).decode()
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def chat(**body) -> bytes:
    return orjson.dumps({"model": "agent", **body})


def test_a_tool_conversation_with_an_image_becomes_the_contract():
    call = parse_chat_request(chat(
        messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "weather where this was taken?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg",
                                                    "detail": "low"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True, "schema": {"type": "object"}}}))
    user, assistant, tool = call.messages
    inline, linked = user.content[1], user.content[2]
    assert isinstance(inline, ImagePart) and inline.media_type == "image/png"
    assert inline.data == PNG and linked.url.endswith("a.jpg") and linked.detail == "low"
    assert assistant.tool_calls[0].arguments == '{"city":"Paris"}'
    assert tool.role == "tool" and tool.tool_call_id == "call_1"
    params = call.params
    assert params.tools[0].name == "get_weather" and params.tool_choice.name == "get_weather"
    assert params.parallel_tool_calls is False
    assert params.response_format.json_schema.schema_ == {"type": "object"}


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
     "tool_choice"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "function_call": {"name": "f"}}]}, "messages[1]"),
])
def test_what_cannot_be_honoured_is_a_400_naming_the_field(body, param):
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    with pytest.raises(GatewayError) as caught:
        parse_chat_request(chat(**body))
    assert caught.value.status == 400 and (caught.value.param or "").startswith(param)


def _tool_response() -> ResponseEvent:
    return ResponseEvent(
        event_id="r:response", request_id="r", status="ok", output=None,
        tool_calls=[ToolCall(id="call_9", name="get_weather", arguments='{"city":"Oslo"}')],
        finish_reason="tool_calls", usage=Usage(input_tokens=5, output_tokens=7),
        created_at=datetime.now(UTC))


def test_tool_calls_render_as_the_sdk_reads_them():
    body = ChatCompletion.model_validate_json(completion_body(_tool_response(), "c", 1, "agent"))
    choice = body.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert choice.message.tool_calls[0].id == "call_9"


def test_streamed_tool_calls_assemble_into_the_call():
    frames = stream_frames(_tool_response(), "c", 1, "agent", include_usage=False)
    chunks = [ChatCompletionChunk.model_validate_json(f[6:]) for f in frames[:-1]]
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_9" and deltas[0].function.arguments == '{"city":"Oslo"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_embeddings_parse_and_render_in_float_and_base64():
    call = parse_embeddings_request(orjson.dumps(
        {"model": "embed", "input": ["a", "b"], "dimensions": 3,
         "encoding_format": "base64"}))
    assert call.inputs == ["a", "b"] and call.dimensions == 3 and call.encoding == "base64"
    response = ResponseEvent(event_id="r:response", request_id="r", status="ok",
                             embeddings=[[0.5, -1.0, 2.0], [0.0, 0.25, 1.5]],
                             usage=Usage(input_tokens=2), created_at=datetime.now(UTC))
    body = orjson.loads(embeddings_body(response, call))
    raw = base64.b64decode(body["data"][1]["embedding"])  # as the SDK decodes it
    assert list(struct.unpack("<3f", raw)) == [0.0, 0.25, 1.5]
    assert body["usage"]["prompt_tokens"] == 2
    floats = parse_embeddings_request(orjson.dumps({"model": "embed", "input": "one"}))
    again = CreateEmbeddingResponse.model_validate_json(embeddings_body(response, floats))
    assert again.data[0].embedding == [0.5, -1.0, 2.0] and floats.inputs == ["one"]


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [1, 2, 3]}, "input[0]"),
    ({"input": []}, "input"),
    ({"input": ["x"] * 257}, "input"),
    ({"input": "x", "dimensions": 0}, "dimensions"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": ""}, "input[0]"),
])
def test_embedding_inputs_outside_the_contract_are_a_400(body, param):
    with pytest.raises(GatewayError) as caught:
        parse_embeddings_request(orjson.dumps({"model": "embed", **body}))
    assert caught.value.status == 400 and caught.value.param == param
