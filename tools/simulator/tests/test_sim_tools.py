"""Tool calling in each wire format, parsed by the official SDKs: the model calls the first
(or forced) tool with schema-valid arguments, then answers the tool result in text."""

from __future__ import annotations

import json

import anthropic
import httpx
import jsonschema
import openai
import pytest
from google import genai
from google.genai import types

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
ASK = {"role": "user", "content": "what is the weather in Paris"}


def oai(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)


def oai_tools() -> list[dict]:
    return [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
        {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
    ]


def test_sim_openai_two_step_tool_conversation(sim):
    r = oai(sim).chat.completions.create(model="gpt-4o", messages=[ASK], tools=oai_tools())
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    follow = [
        ASK,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    r2 = oai(sim).chat.completions.create(model="gpt-4o", messages=follow, tools=oai_tools())
    assert r2.choices[0].finish_reason == "stop" and not r2.choices[0].message.tool_calls
    assert r2.choices[0].message.content == '[gpt-4o] get_weather returned: {"temp_c": 21}'


def test_sim_openai_forced_and_disabled_tool_choice(sim):
    forced = {"type": "function", "function": {"name": "get_time"}}
    r = oai(sim).chat.completions.create(
        model="m", messages=[ASK], tools=oai_tools(), tool_choice=forced
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    r = oai(sim).chat.completions.create(
        model="m", messages=[ASK], tools=oai_tools(), tool_choice="none"
    )
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content.startswith("[m] what is the weather")


def test_sim_openai_streamed_tool_call_fragments(sim):
    stream = oai(sim).chat.completions.create(
        model="m", messages=[ASK], tools=oai_tools(), stream=True
    )
    chunks = list(stream)
    fragments = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(fragments) > 2 and {f.index for f in fragments} == {0}
    assert fragments[0].id and fragments[0].function.name == "get_weather"
    args = "".join(f.function.arguments or "" for f in fragments)
    jsonschema.validate(json.loads(args), WEATHER)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_sim_openai_stream_helper_assembles_tool_call(sim):
    with oai(sim).chat.completions.stream(model="m", messages=[ASK], tools=oai_tools()) as s:
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)


def ant(sim) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)


ANT_TOOLS = [
    {"name": "get_weather", "description": "weather", "input_schema": WEATHER},
    {"name": "get_time", "input_schema": TIME},
]


def test_sim_anthropic_two_step_tool_conversation(sim):
    r = ant(sim).messages.create(model="claude", max_tokens=200, messages=[ASK], tools=ANT_TOOLS)
    assert r.stop_reason == "tool_use"
    (block,) = r.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_")
    jsonschema.validate(block.input, WEATHER)
    follow = [
        ASK,
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": block.id, "content": "sunny, 21 C"}
        ]},
    ]
    r2 = ant(sim).messages.create(model="claude", max_tokens=200, messages=follow, tools=ANT_TOOLS)
    assert r2.stop_reason == "end_turn"
    assert r2.content[0].text == "[claude] get_weather returned: sunny, 21 C"


def test_sim_anthropic_forced_tool_and_streamed_input_json(sim):
    with ant(sim).messages.stream(
        model="claude", max_tokens=200, messages=[ASK], tools=ANT_TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    assert final.stop_reason == "tool_use"
    assert final.content[0].name == "get_time" and final.content[0].input == {"zone": "sample"}


@pytest.fixture
def gem(sim):
    c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url))
    yield c
    c.close()


def gem_tools() -> list[types.Tool]:
    return [types.Tool(function_declarations=[
        types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER),
        types.FunctionDeclaration(
            name="get_time",
            parameters=types.Schema(
                type="OBJECT", properties={"zone": types.Schema(type="STRING")}, required=["zone"]
            ),
        ),
    ])]


def test_sim_gemini_two_step_function_calling(gem):
    config = types.GenerateContentConfig(
        tools=gem_tools(),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    r = gem.models.generate_content(model="gemini-2.5-flash", contents=ASK["content"], config=config)
    (call,) = r.function_calls
    assert call.name == "get_weather"
    jsonschema.validate(call.args, WEATHER)
    contents = [
        types.Content(role="user", parts=[types.Part(text=ASK["content"])]),
        r.candidates[0].content,
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"temp_c": 21})
        ]),
    ]
    r2 = gem.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    assert not r2.function_calls
    assert r2.text == '[gemini-2.5-flash] get_weather returned: {"temp_c":21}'


def test_sim_gemini_forced_function_in_stream(gem):
    config = types.GenerateContentConfig(
        tools=gem_tools(),
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="ANY", allowed_function_names=["get_time"]
        )),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    chunks = list(gem.models.generate_content_stream(model="g", contents="time?", config=config))
    calls = [c for chunk in chunks for c in (chunk.function_calls or [])]
    assert [(c.name, c.args) for c in calls] == [("get_time", {"zone": "sample"})]
    none = config.model_copy(update={"tool_config": types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(mode="NONE"))})
    r = gem.models.generate_content(model="g", contents="time now", config=none)
    assert not r.function_calls and r.text == "[g] time now"


def test_sim_gemini_snake_case_fields_over_http(sim):
    url = f"{sim.gemini_base_url}/v1beta/models/g:generateContent"
    body = {
        "contents": [{"role": "user", "parts": [
            {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}},
            {"text": "weather here"},
        ]}],
        "tools": [{"function_declarations": [{"name": "get_weather",
                                              "parameters_json_schema": WEATHER}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY"}},
    }
    r = httpx.post(url, json=body, headers={"x-goog-api-key": "k"})
    assert r.status_code == 200, r.text
    (part,) = r.json()["candidates"][0]["content"]["parts"]
    jsonschema.validate(part["functionCall"]["args"], WEATHER)
    body["contents"] += [
        {"role": "model", "parts": [part]},
        {"role": "user", "parts": [{"function_response": {"name": "get_weather",
                                                          "response": {"ok": True}}}]},
    ]
    r = httpx.post(url, json=body, headers={"x-goog-api-key": "k"})
    assert r.json()["candidates"][0]["content"]["parts"] == [
        {"text": '[g] get_weather returned: {"ok":true}'}
    ]


def test_sim_openai_truncated_tool_call_stream(sim):
    sim.set_behaviour("m", fail_first=1, failure={"kind": "truncate"})
    r = httpx.post(sim.openai_base_url + "/chat/completions", headers={"authorization": "Bearer k"},
                   json={"model": "m", "messages": [ASK], "tools": oai_tools(), "stream": True})
    frames = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    args = "".join(f["choices"][0]["delta"]["tool_calls"][0]["function"].get("arguments", "")
                   for f in frames)
    assert "[DONE]" not in r.text and all(f["choices"][0]["finish_reason"] is None for f in frames)
    with pytest.raises(json.JSONDecodeError):
        json.loads(args)
