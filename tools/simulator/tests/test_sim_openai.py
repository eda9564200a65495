"""The official openai SDK against the simulator: plain, streamed, scripted failures."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

MSG = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of France"},
]


def client(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)


def aclient(sim) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)


def test_sim_openai_sync_completion(sim):
    r = client(sim).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "[gpt-4o-mini] what is the capital of France"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 8  # 2 system words + 6 user words
    assert r.usage.completion_tokens == 7
    assert r.usage.total_tokens == 15


async def test_sim_openai_async_completion_scripted_reply(sim):
    sim.set_behaviour("vote-a", reply="Paris is the answer")
    r = await aclient(sim).chat.completions.create(model="vote-a", messages=MSG)
    assert r.choices[0].message.content == "Paris is the answer"
    assert r.usage.completion_tokens == 4


def test_sim_openai_max_tokens_cuts_with_length(sim):
    r = client(sim).chat.completions.create(model="m", messages=MSG, max_completion_tokens=3)
    assert r.choices[0].message.content == "[m] what is"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r = client(sim).chat.completions.create(model="m", messages=MSG, max_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_sim_openai_sync_stream_with_usage(sim):
    stream = client(sim).chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[gpt-4o] what is the capital of France"
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o" for c in chunks)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert chunks[-1].usage.prompt_tokens == 8
    assert len({c.id for c in chunks}) == 1


async def test_sim_openai_async_stream_without_usage(sim):
    stream = await aclient(sim).chat.completions.create(model="m", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("[m] what")


def test_sim_openai_missing_auth_is_401_in_openai_shape(sim):
    r = httpx.post(sim.openai_base_url + "/chat/completions", json={"model": "m", "messages": MSG})
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == "invalid_api_key"


def test_sim_openai_429_retry_after(sim):
    sim.set_behaviour(
        "m", fail_first=1, failure={"kind": "status", "status": 429, "retry_after_s": 2}
    )
    with pytest.raises(openai.RateLimitError) as ei:
        client(sim).chat.completions.create(model="m", messages=MSG)
    assert ei.value.status_code == 429
    assert ei.value.response.headers["retry-after"] == "2"
    assert ei.value.body["code"] == "rate_limit_exceeded"
    # the next call succeeds
    assert (
        client(sim).chat.completions.create(model="m", messages=MSG).choices[0].finish_reason
        == "stop"
    )


@pytest.mark.parametrize("status", [500, 503])
def test_sim_openai_server_errors(sim, status):
    sim.set_behaviour("m", fail_first=1, failure={"status": status, "message": "boom"})
    with pytest.raises(openai.InternalServerError) as ei:
        client(sim).chat.completions.create(model="m", messages=MSG)
    assert ei.value.status_code == status
    assert ei.value.body == {"message": "boom", "type": "server_error", "param": None, "code": None}


def test_sim_openai_malformed_body_fails_to_decode(sim):
    sim.set_behaviour("m", fail_first=1, failure={"kind": "malformed"})
    with pytest.raises(json.JSONDecodeError):
        client(sim).chat.completions.create(model="m", messages=MSG)


def test_sim_openai_malformed_stream_fails_to_decode(sim):
    sim.set_behaviour("m", fail_first=1, failure={"kind": "malformed"})
    with pytest.raises(json.JSONDecodeError):
        list(client(sim).chat.completions.create(model="m", messages=MSG, stream=True))


def test_sim_openai_truncated_stream_has_no_done(sim):
    sim.set_behaviour("m", fail_first=1, failure={"kind": "truncate"})
    body = {
        "model": "m",
        "messages": MSG,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"authorization": "Bearer k"}
    with httpx.stream(
        "POST", sim.openai_base_url + "/chat/completions", json=body, headers=headers
    ) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert r.status_code == 200
    assert lines and all(ln.startswith("data: ") for ln in lines)
    assert "data: [DONE]" not in lines
    payloads = [json.loads(ln[6:]) for ln in lines]
    assert all(p["choices"][0]["finish_reason"] is None for p in payloads)
    # the second call is healthy and does end with [DONE]
    with httpx.stream(
        "POST", sim.openai_base_url + "/chat/completions", json=body, headers=headers
    ) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"


def test_sim_openai_truncated_body_is_invalid_json(sim):
    sim.set_behaviour("m", fail_first=1, failure={"kind": "truncate"})
    r = httpx.post(
        sim.openai_base_url + "/chat/completions",
        json={"model": "m", "messages": MSG},
        headers={"authorization": "Bearer k"},
    )
    assert r.status_code == 200 and r.text.startswith('{"id":"chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_sim_openai_fail_first_two_then_success_and_stats(sim):
    sim.set_behaviour("flaky", fail_first=2, failure={"status": 503})
    c = client(sim)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="flaky", messages=MSG)
    assert c.chat.completions.create(model="flaky", messages=MSG).choices[0].message.content
    stats = sim.stats()
    assert stats["models"]["flaky"] == {"calls": 3, "outcomes": {"status_503": 2, "ok": 1}}


def test_sim_openai_sdk_retries_are_seen_per_request_key(sim):
    sim.set_behaviour("m", fail_first=2, failure={"status": 429, "retry_after_s": 0.01})
    c = openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=3)
    r = c.chat.completions.create(
        model="m", messages=MSG, extra_headers={"Idempotency-Key": "req-1"}
    )
    assert r.choices[0].finish_reason == "stop"
    stats = sim.stats()
    assert stats["request_keys"] == {"req-1": 3}
    assert stats["duplicate_request_keys"] == 1


def test_sim_openai_models_list(sim):
    sim.set_behaviour("gpt-4o", latency_ms=1)
    models = client(sim).models.list()
    assert [m.id for m in models.data] == ["gpt-4o"]
