"""The whole provider surface through the Kafka contract, for each provider, with a plain
aiokafka producer: a two-step tool conversation, a JSON-schema answer that validates, an
image input, and (OpenAI, Gemini, self-hosted) embeddings."""

from __future__ import annotations

import json
import uuid

import jsonschema
import pytest

from tests.surface.conftest import CHAT_MODELS, EMBED_MODELS
from tests.surface.surface_cases import (
    ANSWER_SCHEMA,
    WEATHER_TOOL,
    first_turn,
    image_message,
    second_turn,
)
from tests.upstream import RESPONSES, Upstream

pytestmark = pytest.mark.e2e


async def ask(stack, body: dict) -> dict:
    rid = f"surf-{uuid.uuid4().hex[:10]}"
    request = {"request_id": rid, "caller": {"tenant": stack.tenant, "team": "agents"}, **body}
    async with Upstream(stack.bootstrap) as upstream:
        tail = await upstream.tail(RESPONSES)
        try:
            await upstream.send(request)
            [record] = await tail.collect(lambda r: r.key == rid.encode(), 1, timeout=60)
        finally:
            await tail.stop()
    return json.loads(record.value)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
async def test_a_two_step_tool_conversation(surface_stack, provider):
    task = f"chat-{provider}"
    asked = await ask(surface_stack, {"task": task, "messages": first_turn(),
                                      "params": {"tools": [WEATHER_TOOL]}})
    assert asked["status"] == "ok", asked
    assert asked["finish_reason"] == "tool_calls"
    [call] = asked["tool_calls"]
    assert call["name"] == "get_weather"
    jsonschema.validate(json.loads(call["arguments"]), WEATHER_TOOL["parameters"])
    wire_call = {"id": call["id"], "name": call["name"], "arguments": call["arguments"]}
    answered = await ask(surface_stack, {"task": task, "messages": second_turn(wire_call),
                                         "params": {"tools": [WEATHER_TOOL]}})
    assert answered["status"] == "ok", answered
    assert answered["finish_reason"] == "stop" and not answered.get("tool_calls")
    assert "clear" in answered["output"]  # the model read the tool's result


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
async def test_a_json_schema_answer_validates(surface_stack, provider):
    response = await ask(surface_stack, {
        "task": f"chat-{provider}",
        "messages": [{"role": "user", "content": "Weather in Paris as JSON."}],
        "params": {"response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "strict": True, "schema": ANSWER_SCHEMA}}}})
    assert response["status"] == "ok", response
    jsonschema.validate(response["parsed"], ANSWER_SCHEMA)
    assert json.loads(response["output"]) == response["parsed"]


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
async def test_an_image_reaches_the_model(surface_stack, provider):
    response = await ask(surface_stack, {"task": f"chat-{provider}",
                                         "messages": image_message(count=2)})
    assert response["status"] == "ok", response
    assert "2 image" in response["output"]


@pytest.mark.parametrize("provider", list(EMBED_MODELS))
async def test_embeddings(surface_stack, provider):
    texts = ["kafka is a log", "a log is kafka", "kafka is a log"]
    response = await ask(surface_stack, {"task": f"embed-{provider}", "operation": "embed",
                                         "input": texts})
    assert response["status"] == "ok", response
    vectors = response["embeddings"]
    assert len(vectors) == 3 and len(vectors[0]) >= 64
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    assert response["usage"]["input_tokens"] > 0
