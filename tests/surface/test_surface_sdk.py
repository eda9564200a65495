"""The whole provider surface through the gateway with the official ``openai`` SDK, for each
provider: ``tools=`` (two steps), ``response_format=`` (JSON schema), image content parts,
and ``client.embeddings.create`` (OpenAI, Gemini, self-hosted)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openai import OpenAI

from tests.surface.conftest import CHAT_MODELS, EMBED_MODELS
from tests.surface.surface_cases import ANSWER_SCHEMA, TOOL_RESULT, WEATHER_TOOL, png_b64

pytestmark = pytest.mark.e2e

TOOLS = [{"type": "function", "function": WEATHER_TOOL}]


@pytest.fixture(scope="module")
def client(surface_stack) -> OpenAI:
    return OpenAI(base_url=surface_stack.gateway_url + "/v1", api_key=surface_stack.api_key,
                  timeout=60, max_retries=0)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_tools_in_two_steps(client, provider):
    messages = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    first = client.chat.completions.create(model=f"chat-{provider}", messages=messages,
                                           tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", first
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["parameters"])
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT}]
    second = client.chat.completions.create(model=f"chat-{provider}", messages=messages,
                                            tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert "clear" in second.choices[0].message.content


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_response_format_json_schema(client, provider):
    completion = client.chat.completions.create(
        model=f"chat-{provider}",
        messages=[{"role": "user", "content": "Weather in Paris as JSON."}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "weather", "strict": True, "schema": ANSWER_SCHEMA}})
    jsonschema.validate(json.loads(completion.choices[0].message.content), ANSWER_SCHEMA)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_image_content_parts(client, provider):
    url = f"data:image/png;base64,{png_b64()}"
    completion = client.chat.completions.create(model=f"chat-{provider}", messages=[
        {"role": "user", "content": [{"type": "text", "text": "How many images?"},
                                     {"type": "image_url", "image_url": {"url": url}}]}])
    assert "1 image" in completion.choices[0].message.content


@pytest.mark.parametrize("provider", list(EMBED_MODELS))
def test_embeddings_create(client, provider):
    result = client.embeddings.create(model=f"embed-{provider}",
                                      input=["kafka is a log", "a log is kafka"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) >= 64
    assert result.data[0].embedding != result.data[1].embedding
    again = client.embeddings.create(model=f"embed-{provider}", input="kafka is a log")
    assert again.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-6)
