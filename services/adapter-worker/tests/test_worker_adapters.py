"""Adapters: build, parse, stream-parse and classify for each wire format (pure functions;
the official SDKs' parse of the simulator is tested in tools/simulator)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from modelbus_adapter_worker.adapters import build_adapter
from modelbus_adapter_worker.adapters.sse import SseDecoder
from modelbus_adapter_worker.errors import ProviderError
from modelbus_schemas import ModelRef, RoutingDecision, TaskEvent

NOW = datetime.now(UTC)


def _task(provider="openai", model="gpt-4o", **kw) -> TaskEvent:
    decision = RoutingDecision(policy_version="v1", route="t", strategy="single",
                               selected=[ModelRef(provider=provider, model=model)],
                               decided_at=NOW)
    kw.setdefault("messages", [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hi"},
                               {"role": "assistant", "content": "Hello"},
                               {"role": "user", "content": "Sum up"}])
    return TaskEvent(event_id="r:task:0", request_id="r", task="t", part_id=0, parts_total=1,
                     provider=provider, model=model, received_at=NOW, decision=decision, **kw)


def _frames(raw: str):
    decoder, out = SseDecoder(), []
    for line in raw.splitlines(keepends=True):
        frame = decoder.line(line)
        if frame:
            out.append(frame)
    return out


def _feed(adapter, raw: str):
    parser = adapter.stream_parser()
    for frame in _frames(raw):
        parser.feed(*frame)
    return parser.finish()


# -- OpenAI -------------------------------------------------------------------------------

def test_worker_openai_build():
    req = build_adapter("openai", "sk-k").build(
        _task(params={"max_tokens": 50, "temperature": 0.2, "stop": ["END"]}), stream=True)
    assert req.path == "/chat/completions" and req.headers["Authorization"] == "Bearer sk-k"
    assert req.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in req.json["messages"]] == ["system", "user", "assistant", "user"]
    assert req.json["max_completion_tokens"] == 50 and req.json["stop"] == ["END"]
    assert req.json["stream"] is True and req.json["stream_options"] == {"include_usage": True}


def test_worker_selfhosted_uses_max_tokens_and_no_key():
    req = build_adapter("selfhosted", None).build(_task(params={"max_tokens": 9}))
    assert req.json["max_tokens"] == 9 and "Authorization" not in req.headers


def test_worker_openai_parse_and_classify():
    adapter = build_adapter("openai", "k")
    body = {"model": "gpt-4o-2024", "choices": [{"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": "Hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    c = adapter.parse(orjson.dumps(body))
    assert (c.text, c.finish_reason, c.input_tokens, c.output_tokens, c.response_model) == (
        "Hi", "length", 3, 1, "gpt-4o-2024")
    err = adapter.classify(429, {"retry-after": "2"},
                           b'{"error": {"message": "slow down", "type": "rate_limit"}}')
    assert err.retryable and err.retry_after_s == 2.0 and "slow down" in str(err)
    assert not adapter.classify(400, {}, b"{}").retryable
    with pytest.raises(ProviderError) as exc:
        adapter.parse(b"{not json")
    assert exc.value.retryable and exc.value.code == "malformed_response"


OPENAI_STREAM = (
    'data: {"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"He"}}]}\n\n'
    'data: {"model":"m","choices":[{"index":0,"delta":{"content":"llo"}}]}\n\n'
    'data: {"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    'data: {"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\n'
    "data: [DONE]\n\n")


def test_worker_openai_stream_complete_and_truncated():
    adapter = build_adapter("openai", "k")
    c = _feed(adapter, OPENAI_STREAM)
    assert (c.text, c.finish_reason, c.input_tokens, c.output_tokens) == ("Hello", "stop", 4, 2)
    with pytest.raises(ProviderError) as exc:
        _feed(adapter, OPENAI_STREAM.split('data: {"model":"m","choices":[{"index":0,"delta":{}')[0])
    assert exc.value.code == "truncated_stream" and exc.value.retryable


# -- Anthropic ----------------------------------------------------------------------------

def test_worker_anthropic_build():
    adapter = build_adapter("anthropic", "ak", default_max_tokens=77)
    req = adapter.build(_task("anthropic", "claude-sonnet-4-5", params={"stop": ["X"]}))
    assert req.path == "/messages"
    assert req.headers["x-api-key"] == "ak" and req.headers["anthropic-version"] == "2023-06-01"
    assert req.json["system"] == "Be brief." and req.json["max_tokens"] == 77
    assert [m["role"] for m in req.json["messages"]] == ["user", "assistant", "user"]
    assert req.json["stop_sequences"] == ["X"] and "stream" not in req.json


def test_worker_anthropic_parse_and_classify():
    adapter = build_adapter("anthropic", "k")
    body = {"type": "message", "model": "claude-x", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "A"},
                        {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
                        {"type": "text", "text": "B"}],
            "usage": {"input_tokens": 5, "output_tokens": 2}}
    c = adapter.parse(orjson.dumps(body))
    assert (c.text, c.finish_reason, c.input_tokens, c.output_tokens) == ("AB", "stop", 5, 2)
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [("t", "f", '{"a":1}')]
    err = adapter.classify(529, {}, b'{"type":"error","error":{"type":"overloaded_error",'
                                    b'"message":"Overloaded"}}')
    assert err.retryable and "Overloaded" in str(err)


ANTHROPIC_STREAM = (
    'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x",'
    '"usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    '"content_block":{"type":"text","text":""}}\n\n'
    'event: ping\ndata: {"type":"ping"}\n\n'
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    '"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
    '"usage":{"output_tokens":3}}\n\n'
    'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_worker_anthropic_stream_complete_truncated_and_error_event():
    adapter = build_adapter("anthropic", "k")
    c = _feed(adapter, ANTHROPIC_STREAM)
    assert (c.text, c.finish_reason, c.input_tokens, c.output_tokens) == ("Hi", "length", 7, 3)
    with pytest.raises(ProviderError) as exc:
        _feed(adapter, ANTHROPIC_STREAM.split("event: message_delta")[0])
    assert exc.value.code == "truncated_stream"
    with pytest.raises(ProviderError) as exc:
        _feed(adapter, 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                       '"message":"Overloaded"}}\n\n')
    assert exc.value.retryable


# -- Gemini -------------------------------------------------------------------------------

def test_worker_gemini_build():
    adapter = build_adapter("gemini", "gk")
    req = adapter.build(_task("gemini", "gemini-2.5-flash",
                              params={"max_tokens": 30, "top_p": 0.5}), stream=True)
    assert req.path == "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert req.headers["x-goog-api-key"] == "gk" and "key=" not in req.path
    assert req.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in req.json["contents"]] == ["user", "model", "user"]
    assert req.json["generationConfig"] == {"maxOutputTokens": 30, "topP": 0.5}
    assert adapter.build(_task("gemini", "gemini-2.5-flash")).path.endswith(":generateContent")


def test_worker_gemini_parse_and_classify_retry_info():
    adapter = build_adapter("gemini", "k")
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Yo"}]},
                            "finishReason": "SAFETY"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1},
            "modelVersion": "gemini-2.5-flash-001"}
    c = adapter.parse(orjson.dumps(body))
    assert (c.text, c.finish_reason, c.input_tokens, c.response_model) == (
        "Yo", "content_filter", 4, "gemini-2.5-flash-001")
    err = adapter.classify(429, {}, orjson.dumps({"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                     "retryDelay": "1.5s"}]}}))
    assert err.retryable and err.retry_after_s == 1.5 and "RESOURCE_EXHAUSTED" in str(err)


GEMINI_STREAM = (
    'data: {"candidates":[{"content":{"parts":[{"text":"A"}],"role":"model"}}],'
    '"usageMetadata":{"promptTokenCount":2}}\n\n'
    'data: {"candidates":[{"content":{"parts":[{"text":"B"}],"role":"model"},'
    '"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":2}}\n\n')


def test_worker_gemini_stream_complete_and_truncated():
    adapter = build_adapter("gemini", "k")
    c = _feed(adapter, GEMINI_STREAM)
    assert (c.text, c.finish_reason, c.output_tokens) == ("AB", "stop", 2)
    with pytest.raises(ProviderError) as exc:
        _feed(adapter, GEMINI_STREAM.split("\n\n")[0] + "\n\n")
    assert exc.value.code == "truncated_stream"


def test_worker_sse_decoder_joins_data_lines_and_skips_comments():
    assert _frames(": keepalive\n\nevent: x\ndata: a\ndata: b\n\n") == [("x", "a\nb")]
    assert _frames("data: unterminated") == []


def test_worker_unknown_provider_is_refused():
    with pytest.raises(ValueError):
        build_adapter("nope", "k")
