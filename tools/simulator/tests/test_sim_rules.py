"""Requests the real APIs refuse get the provider's own 400 before any scripted behaviour
runs (no call is counted); rules can be switched off and the opt-in ones on."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

U = {"role": "user", "content": "hello there"}
A = {"role": "assistant", "content": "hi"}
FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def oai(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)


OPENAI_REFUSED = [
    ("5 stop strings", {"model": "gpt-4o", "stop": list("abcde")}, "stop"),
    ("temperature on o3-mini", {"model": "o3-mini", "temperature": 0.2}, "temperature"),
    ("top_p on gpt-5", {"model": "gpt-5", "top_p": 0.5}, "top_p"),
    ("max_tokens on o1", {"model": "o1", "max_tokens": 10}, "max_tokens"),
    ("tool name", {"model": "m", "tools": [{**FN, "function": {"name": "get weather"}}]},
     "tools[0].function.name"),
    ("tool name length", {"model": "m", "tools": [{**FN, "function": {"name": "f" * 65}}]},
     "tools[0].function.name"),
    ("tool_choice without tools", {"model": "m", "tool_choice": "required"}, "tool_choice"),
    ("tool_choice unknown function", {"model": "m", "tools": [FN], "tool_choice": {
        "type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ("tool schema", {"model": "m", "tools": [
        {**FN, "function": {"name": "f", "parameters": {"type": "nonsense"}}}]},
     "tools[0].function.parameters"),
    ("strict schema not closed", {"model": "m", "tools": [{**FN, "function": {
        "name": "f", "strict": True,
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]},
     "tools[0].function.parameters"),
    ("unanswered tool call", {"model": "m", "messages": [
        U, {"role": "assistant", "content": None, "tool_calls": [CALL]}, U]}, "messages.[2].role"),
    ("orphan tool message", {"model": "m", "messages": [
        U, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]}, "messages.[1].role"),
    ("json_object without the word", {"model": "m", "response_format": {"type": "json_object"}},
     "messages"),
]


@pytest.mark.parametrize("body, param", [pytest.param(b, p, id=i) for i, b, p in OPENAI_REFUSED])
def test_sim_openai_refusals(sim, body, param):
    body = {"messages": [U], **body}
    with pytest.raises(openai.BadRequestError) as exc:
        oai(sim).chat.completions.create(**body)
    assert exc.value.param == param
    assert exc.value.body["type"] == "invalid_request_error"
    stats = sim.stats()
    assert stats["total_calls"] == 0 and stats["rejected"]["openai_400"] == 1
    assert sum(stats["refused_by_rule"].values()) == 1


def test_sim_openai_accepts_what_the_api_accepts(sim):
    ok = oai(sim).chat.completions
    ok.create(model="gpt-4o", messages=[U], stop=list("abcd"), temperature=1.7, max_tokens=5)
    ok.create(model="o3-mini", messages=[U], temperature=1, max_completion_tokens=5)
    ok.create(model="gpt-5-chat-latest", messages=[U], temperature=0.3)
    answered = [U, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"}]
    assert ok.create(model="m", messages=answered).choices[0].message.content == "[m] f returned: done"
    assert sim.stats()["total_calls"] == 4


def test_sim_rule_switched_off_then_reset(sim):
    sim.set_rules(**{"openai.max_stop": False})
    oai(sim).chat.completions.create(model="m", messages=[U], stop=list("abcdef"))
    sim.reset()
    with pytest.raises(openai.BadRequestError):
        oai(sim).chat.completions.create(model="m", messages=[U], stop=list("abcdef"))
    r = httpx.put(sim.base_url + "/_sim/rules", json={"no.such_rule": True})
    assert r.status_code == 422 and "no.such_rule" in r.json()["error"]


def ant(sim) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
ANTHROPIC_REFUSED = [
    ("empty string content", {"messages": [{"role": "user", "content": ""}]}, "non-empty content"),
    ("empty text block", {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
     "text content blocks must be non-empty"),
    ("temperature above 1", {"messages": [U], "temperature": 1.5}, "temperature: range: 0..1"),
    ("tool_use unanswered", {"messages": [U, {"role": "assistant", "content": [TOOL_USE]}, U]},
     "without `tool_result`"),
    ("tool_result orphan", {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]},
     "unexpected `tool_use_id`"),
    ("tool name", {"messages": [U], "tools": [{"name": "a b", "input_schema": {"type": "object"}}]},
     "name"),
    ("no messages", {"messages": []}, "at least one message"),
]


@pytest.mark.parametrize("body, match", [pytest.param(b, m, id=i) for i, b, m in ANTHROPIC_REFUSED])
def test_sim_anthropic_refusals(sim, body, match):
    known = {k: v for k, v in body.items() if k in ("messages", "tools")}
    extra = {k: v for k, v in body.items() if k not in known}  # anthropic 2.x has no temperature
    with pytest.raises(anthropic.BadRequestError, match=match) as exc:
        ant(sim).messages.create(model="claude", max_tokens=10, extra_body=extra, **known)
    assert exc.value.body["error"]["type"] == "invalid_request_error"
    assert sim.stats()["total_calls"] == 0


def test_sim_anthropic_missing_max_tokens_is_400(sim):
    r = httpx.post(sim.anthropic_base_url + "/v1/messages",
                   json={"model": "claude", "messages": [U]},
                   headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]


def test_sim_anthropic_role_order_rules_are_opt_in(sim):
    leading_assistant, two_users = [A, U], [U, U]
    for msgs in (leading_assistant, two_users):  # the current API combines / accepts these
        ant(sim).messages.create(model="claude", max_tokens=10, messages=msgs)
    sim.set_rules(**{"anthropic.first_user": True, "anthropic.alternating_roles": True})
    with pytest.raises(anthropic.BadRequestError, match='first message must use the "user" role'):
        ant(sim).messages.create(model="claude", max_tokens=10, messages=leading_assistant)
    with pytest.raises(anthropic.BadRequestError, match="roles must alternate"):
        ant(sim).messages.create(model="claude", max_tokens=10, messages=two_users)
    assert sim.stats()["refused_by_rule"] == {
        "anthropic.first_user": 1, "anthropic.alternating_roles": 1
    }


GEMINI_USER = {"role": "user", "parts": [{"text": "hello"}]}
GEMINI_REFUSED = [
    ("6 stop sequences", {"contents": [GEMINI_USER],
                          "generationConfig": {"stopSequences": list("abcdef")}}, "stop"),
    ("empty parts", {"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
    ("empty text", {"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "oneof field 'data'"),
    ("system only", {"contents": [], "systemInstruction": {"parts": [{"text": "be nice"}]}},
     "contents is not specified"),
    ("function response name", {"contents": [
        GEMINI_USER,
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]},
    ]}, "function response"),
    ("function response without call", {"contents": [
        {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]},
    ]}, "function response"),
    ("function name", {"contents": [GEMINI_USER], "tools": [
        {"functionDeclarations": [{"name": "9lives"}]}]}, "Invalid function name"),
    ("schema without json mime", {"contents": [GEMINI_USER],
                                  "generationConfig": {"responseSchema": {"type": "OBJECT"}}},
     "response_mime_type"),
]


@pytest.mark.parametrize("body, match", [pytest.param(b, m, id=i) for i, b, m in GEMINI_REFUSED])
def test_sim_gemini_refusals(sim, body, match):
    r = httpx.post(f"{sim.gemini_base_url}/v1beta/models/gemini-2.5-flash:generateContent",
                   json=body, headers={"x-goog-api-key": "k"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400 and match in err["message"]
    assert sim.stats()["total_calls"] == 0
