"""The whole provider surface through the worker, over real HTTP against the simulator with
the providers' request rules on (the handler is the one app.py builds, in process): for each
of OpenAI, Anthropic, Gemini and self-hosted a two-step tool conversation, a JSON-schema
answer, an image, and (not Anthropic) embeddings with the cache; and every row of the
provider table normalised so that it succeeds."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
from modelbus_schemas import ErrorCode, ResultEvent

from tests.worker.worker_helpers import handle_in_process, unique

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
          "gemini": "gemini-2.5-flash", "selfhosted": "llama-3.1-8b"}
EMBEDDERS = {"openai": "text-embedding-3-small", "gemini": "gemini-embedding-001",
             "selfhosted": "bge-m3"}
WEATHER = {"name": "get_weather", "description": "Weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"},
                                           "count": {"type": "integer"}},
          "required": ["title", "count"], "additionalProperties": False}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
STRICT = {"anthropic.first_user": True, "anthropic.alternating_roles": True}


@pytest.fixture(params=list(MODELS))
def provider(request) -> str:
    return request.param


@pytest.fixture
def strict_sim(sim):
    """The simulator with the stricter Anthropic role rules on too (older API versions and
    Bedrock refuse a leading assistant turn and consecutive user turns)."""
    def put(rules):
        req = urllib.request.Request(sim.base_url + "/_sim/rules", method="PUT",
                                     data=json.dumps(rules).encode(),
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()

    put(STRICT)
    yield sim
    put(dict.fromkeys(STRICT, False))


async def run(sim, redis_url, provider, model, *, stream=True, **fields) -> ResultEvent:
    return await handle_in_process(sim, redis_url, provider, model, stream=stream,
                                   settings={"max_attempts": 1}, **fields)


@pytest.mark.parametrize("stream", [True, False])
async def test_worker_two_step_tool_conversation(strict_sim, redis_url, provider, stream):
    model = unique(MODELS[provider])
    ask = [{"role": "system", "content": "Use tools."},
           {"role": "user", "content": "Weather in Paris?"}]
    tools = {"tools": [WEATHER], "tool_choice": "required"}
    first = await run(strict_sim, redis_url, provider, model, stream=stream, messages=ask,
                      params=tools)
    assert first.status == "ok", first.error
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    answer = [*ask, {"role": "assistant", "content": None,
                     "tool_calls": [call.model_dump()]},
              {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}]
    second = await run(strict_sim, redis_url, provider, model, stream=stream,
                       messages=answer, params={"tools": [WEATHER]})
    assert second.status == "ok", second.error
    assert second.finish_reason == "stop" and not second.tool_calls
    assert "get_weather returned" in second.text and "21" in second.text


async def test_worker_json_schema_answer_is_parsed(strict_sim, redis_url, provider):
    model = unique(MODELS[provider])
    fmt = {"type": "json_schema", "json_schema": {"name": "summary", "schema": SCHEMA,
                                                  "strict": True}}
    result = await run(strict_sim, redis_url, provider, model,
                       params={"response_format": fmt}, text="Summarise this in JSON.")
    assert result.status == "ok", result.error
    assert set(result.parsed) == {"title", "count"}
    assert isinstance(result.parsed["count"], int) and json.loads(result.text) == result.parsed


@pytest.mark.parametrize("openai_like", ["openai", "selfhosted"])
async def test_worker_strict_schema_strict_mode_cannot_take_still_answers(
        strict_sim, redis_url, openai_like):
    loose = {"type": "object", "properties": {"title": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "loose", "schema": loose,
                                                  "strict": True}}
    result = await run(strict_sim, redis_url, openai_like, unique(MODELS[openai_like]),
                       params={"response_format": fmt})
    assert result.status == "ok", result.error
    assert isinstance(result.parsed, dict)


async def test_worker_json_object_answer_is_parsed(strict_sim, redis_url, provider):
    model = unique(MODELS[provider])  # no message says "json": OpenAI would refuse as is
    result = await run(strict_sim, redis_url, provider, model,
                       params={"response_format": {"type": "json_object"}},
                       text="Summarise the weather report.")
    assert result.status == "ok", result.error
    assert isinstance(result.parsed, dict) and json.loads(result.text) == result.parsed


async def test_worker_image_reaches_the_model(strict_sim, redis_url, provider):
    model = unique(MODELS[provider])
    content = [{"type": "text", "text": "What is in this picture?"},
               {"type": "image", "data": PNG, "media_type": "image/png"}]
    result = await run(strict_sim, redis_url, provider, model,
                       messages=[{"role": "user", "content": content}])
    assert result.status == "ok", result.error
    assert "saw 1 image" in result.text


@pytest.mark.parametrize("embed_provider", list(EMBEDDERS))
async def test_worker_embeddings_and_their_cache(strict_sim, redis_url, embed_provider):
    model = unique(EMBEDDERS[embed_provider])
    inputs = [f"document {i}" for i in range(130)]  # Gemini: two batches
    first = await run(strict_sim, redis_url, embed_provider, model, operation="embed",
                      input=inputs, messages=[], tenant=unique("emb"))
    assert first.status == "ok", first.error
    assert len(first.embeddings) == 130 and first.usage.input_tokens > 0
    assert len({tuple(v) for v in first.embeddings}) == 130
    tenant = first.tenant
    again = await run(strict_sim, redis_url, embed_provider, model, operation="embed",
                      input=[inputs[5], "something new"], messages=[], tenant=tenant)
    assert again.embeddings[0] == first.embeddings[5]
    assert 0 < again.usage.input_tokens < first.usage.input_tokens / 10


async def test_worker_anthropic_embeddings_are_refused_before_any_call(strict_sim, redis_url):
    model = unique("claude-haiku-4-5")
    result = await run(strict_sim, redis_url, "anthropic", model, operation="embed",
                       input=["x"], messages=[])
    assert result.status == "error" and result.error.code == ErrorCode.INVALID_REQUEST
    assert result.attempts == [] and strict_sim.calls(model) == 0


# -- every row of the provider table ------------------------------------------------------

ROWS = {
    "five_stops": {"params": {"stop": ["s1", "s2", "s3", "s4", "s5"]}},
    "six_stops": {"params": {"stop": ["s1", "s2", "s3", "s4", "s5", "s6"]}},
    "assistant_first": {"messages": [{"role": "assistant", "content": "Hello, how can I help?"},
                                     {"role": "user", "content": "Tell me a joke"}]},
    "two_user_turns": {"messages": [{"role": "user", "content": "First question"},
                                    {"role": "user", "content": "Second question"}]},
    "system_only": {"messages": [{"role": "system", "content": "Say something nice"}]},
    "empty_content": {"messages": [{"role": "user", "content": "Hi"},
                                   {"role": "assistant", "content": ""},
                                   {"role": "user", "content": "Still there?"}]},
}


@pytest.mark.parametrize("row", list(ROWS))
async def test_worker_provider_table_row_succeeds(strict_sim, redis_url, provider, row):
    model = unique(MODELS[provider])
    result = await run(strict_sim, redis_url, provider, model, **ROWS[row])
    assert result.status == "ok", result.error
    assert result.text and strict_sim.calls(model) == 1


@pytest.mark.parametrize("model", ["o3-mini", "gpt-5-mini"])
async def test_worker_reasoning_model_with_temperature_succeeds(strict_sim, redis_url, model):
    result = await run(strict_sim, redis_url, "openai", model,
                       params={"temperature": 0.2, "top_p": 0.9, "max_tokens": 200,
                               "stop": ["never-appears"]})
    assert result.status == "ok", result.error
