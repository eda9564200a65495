"""The official anthropic SDK against the simulator: plain, streamed, scripted failures."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

MSG = [{"role": "user", "content": [{"type": "text", "text": "name three primary colours please"}]}]
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def client(sim) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)


def test_sim_anthropic_create(sim):
    r = client(sim).messages.create(
        model="claude-sonnet", max_tokens=100, system="you are terse", messages=MSG
    )
    assert r.type == "message" and r.role == "assistant" and r.model == "claude-sonnet"
    assert r.id.startswith("msg_")
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == "[claude-sonnet] name three primary colours please"
    assert r.stop_reason == "end_turn" and r.stop_sequence is None
    assert r.usage.input_tokens == 8  # 3 system + 5 user
    assert r.usage.output_tokens == 6


async def test_sim_anthropic_async_create_max_tokens(sim):
    c = anthropic.AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="k", max_retries=0)
    r = await c.messages.create(model="claude", max_tokens=2, messages=MSG)
    assert r.content[0].text == "[claude] name"
    assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 2


def test_sim_anthropic_stream_final_message(sim):
    sim.set_behaviour("claude", reply="Red, yellow and blue.", ttft_ms=5, chunk_delay_ms=1)
    with client(sim).messages.stream(
        model="claude", max_tokens=50, system=[{"type": "text", "text": "sys"}], messages=MSG
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == "Red, yellow and blue."
    assert len(deltas) == 4
    assert final.content[0].text == "Red, yellow and blue."
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 6 and final.usage.output_tokens == 4
    assert final.model == "claude"


def test_sim_anthropic_raw_event_sequence(sim):
    body = {"model": "c", "max_tokens": 10, "messages": MSG, "stream": True}
    with httpx.stream("POST", sim.base_url + "/v1/messages", json=body, headers=HEADERS) as r:
        events = [ln[7:] for ln in r.iter_lines() if ln.startswith("event: ")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[3:-3]) == {"content_block_delta"}


def test_sim_anthropic_requires_max_tokens_and_headers(sim):
    body = {"model": "c", "messages": MSG}
    r = httpx.post(sim.base_url + "/v1/messages", json=body, headers=HEADERS)
    assert r.status_code == 400
    assert r.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    body["max_tokens"] = 5
    r = httpx.post(sim.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    r = httpx.post(
        sim.base_url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(sim.base_url + "/v1/messages", json=body, headers=HEADERS)
    assert r.status_code == 200
    assert sim.stats()["rejected"] == {"anthropic_400": 2, "anthropic_401": 1}


def test_sim_anthropic_429_retry_after(sim):
    sim.set_behaviour("c", fail_first=1, failure={"status": 429, "retry_after_s": 1.5})
    with pytest.raises(anthropic.RateLimitError) as ei:
        client(sim).messages.create(model="c", max_tokens=5, messages=MSG)
    assert ei.value.response.headers["retry-after"] == "1.5"
    assert ei.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("status", "etype"), [(500, "api_error"), (503, "overloaded_error"), (529, "overloaded_error")]
)
def test_sim_anthropic_server_errors(sim, status, etype):
    sim.set_behaviour("c", fail_first=1, failure={"status": status})
    with pytest.raises(anthropic.APIStatusError) as ei:
        client(sim).messages.create(model="c", max_tokens=5, messages=MSG)
    assert ei.value.status_code == status
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == etype


def test_sim_anthropic_malformed(sim):
    sim.set_behaviour("c", fail_first=1, failure={"kind": "malformed"})
    with pytest.raises(json.JSONDecodeError):
        client(sim).messages.create(model="c", max_tokens=5, messages=MSG)


def test_sim_anthropic_truncated_stream_has_no_message_stop(sim):
    sim.set_behaviour("c", fail_first=1, failure={"kind": "truncate"})
    body = {"model": "c", "max_tokens": 50, "messages": MSG, "stream": True}
    with httpx.stream("POST", sim.base_url + "/v1/messages", json=body, headers=HEADERS) as r:
        events = [ln[7:] for ln in r.iter_lines() if ln.startswith("event: ")]
    assert r.status_code == 200
    assert "content_block_delta" in events
    assert "message_stop" not in events and "message_delta" not in events
    # through the SDK the message is left without a stop_reason
    sim.set_behaviour("c", fail_first=1, failure={"kind": "truncate"})
    with client(sim).messages.stream(model="c", max_tokens=50, messages=MSG) as stream:
        final = stream.get_final_message()
    assert final.stop_reason is None
    assert final.content[0].text == "[c] name three "  # first half of the 6 pieces
