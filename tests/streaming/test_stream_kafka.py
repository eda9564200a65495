"""Streaming through the Kafka contract, for each provider, with plain aiokafka: the first
stream event arrives early, the deltas add up to the final response, a provider stream that
breaks after some deltas ends in an error event and an error response after one provider
call, and a JSON route streams nothing (so nothing the final check refuses can leak)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from modelbus_testing.simulator import provider_calls, simulate

from tests.streaming.stream_client import (
    REPLY,
    REPLY_WORDS,
    stream_key,
    stream_request,
    streaming_behaviour,
)
from tests.surface.conftest import CHAT_MODELS
from tests.surface.surface_cases import ANSWER_SCHEMA

pytestmark = pytest.mark.e2e
#: Providers whose JSON answer is text the worker parses. Anthropic's comes from a forced tool
#: whose input is always a JSON object, so nothing refuses it without a policy output guard.
TEXT_JSON_PROVIDERS = ["openai", "gemini", "selfhosted"]

ASK = [{"role": "user", "content": "Tell me a long story."}]
JSON_FORMAT = {"type": "json_schema",
               "json_schema": {"name": "weather", "strict": True, "schema": ANSWER_SCHEMA}}
REFUSED = "REFUSED-BY-THE-SCHEMA this is not JSON"


def assert_one_ordered_stream(run, tenant: str) -> None:
    assert [e["seq"] for e in run.events] == list(range(len(run.events))), run.events
    assert all(e["kind"] == "delta" for e in run.events[:-1])
    assert run.keys == {stream_key(tenant, run.request_id)}
    assert {e["tenant"] for e in run.events} == {tenant}
    assert run.response["stream_events"] == len(run.events)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
async def test_the_first_delta_arrives_early_and_the_deltas_make_the_final_text(
        stream_stack, provider):
    run = await stream_request(stream_stack, {"task": f"chat-{provider}", "messages": ASK})
    response = run.response
    assert response["status"] == "ok", response
    assert response["output"] == REPLY
    assert run.events, "no stream event reached the consumer"
    # a token every 20 ms for about 2 s: the first one must not wait for the last
    assert run.ttft_s < 0.25 * run.total_s, (run.ttft_s, run.total_s)
    assert run.text == response["output"]
    assert_one_ordered_stream(run, stream_stack.tenant)
    end = run.events[-1]
    assert end["kind"] == "end", end
    assert end["finish_reason"] == response["finish_reason"] == "stop"
    assert end["usage"]["output_tokens"] == response["usage"]["output_tokens"] == REPLY_WORDS
    assert {(e["provider"], e["model"]) for e in run.events} == {(provider, CHAT_MODELS[provider])}
    assert len(run.events) < REPLY_WORDS  # deltas are coalesced, not one event per token
    assert response["ttft_ms"] is not None and response["ttft_ms"] < run.total_s * 1000


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
async def test_a_stream_broken_after_some_deltas_ends_in_an_error_event_and_response(
        stream_stack, provider):
    model = CHAT_MODELS[provider]
    calls = provider_calls(stream_stack.stack, model)
    # the simulator sends the first half of the reply, then ends the stream without its end
    simulate(stream_stack.stack, model,
             **streaming_behaviour(fail_first=1, failure={"kind": "truncate"}))
    try:
        run = await stream_request(stream_stack, {"task": f"chat-{provider}", "messages": ASK})
    finally:
        simulate(stream_stack.stack, model, **streaming_behaviour())
    response = run.response
    assert provider_calls(stream_stack.stack, model) - calls == 1  # no retry, no fallback
    assert response["status"] == "error", response
    assert response["error"]["code"] == "stream_interrupted", response
    assert len(run.events) >= 2, run.events  # some deltas, then the error
    assert_one_ordered_stream(run, stream_stack.tenant)
    last = run.events[-1]
    assert last["kind"] == "error" and last["error"]["code"] == "stream_interrupted", last
    assert run.text and REPLY.startswith(run.text) and len(run.text) < len(REPLY)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
async def test_a_json_route_streams_nothing_and_answers_the_checked_response(
        stream_stack, provider):
    task = {"task": f"chat-{provider}",
            "messages": [{"role": "user", "content": "Weather in Paris as JSON."}],
            "params": {"response_format": JSON_FORMAT}}
    run = await stream_request(stream_stack, task)
    assert run.response["status"] == "ok", run.response
    jsonschema.validate(run.response["parsed"], ANSWER_SCHEMA)
    assert json.loads(run.response["output"]) == run.response["parsed"]
    assert run.events == [] and run.response["stream_events"] == 0


@pytest.mark.parametrize("provider", TEXT_JSON_PROVIDERS)
async def test_output_the_json_check_refuses_never_streams(stream_stack, provider):
    model = CHAT_MODELS[provider]
    simulate(stream_stack.stack, model,
             **streaming_behaviour(reply=REFUSED, break_schema=True))
    try:
        run = await stream_request(stream_stack, {
            "task": f"chat-{provider}",
            "messages": [{"role": "user", "content": "Weather in Paris as JSON."}],
            "params": {"response_format": JSON_FORMAT}})
    finally:
        simulate(stream_stack.stack, model, **streaming_behaviour())
    assert run.response["status"] == "error", run.response
    assert run.response["error"]["code"] == "output_invalid", run.response
    assert run.events == [] and run.response["stream_events"] == 0
    assert "REFUSED" not in (run.response.get("output") or "")
    leaked = [e for e in run.others if "REFUSED" in e.get("text", "")]
    assert not leaked, leaked
