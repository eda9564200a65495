"""Error paths and Idempotency-Key through the whole stack: 401 in OpenAI's error shape,
unknown task, forbidden, budget and quota (429 with Retry-After), a deadline that passes
while the model hangs (504, without waiting for the model), and safe retries."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "hello gateway"}]


def _client(gw, team: str = "support", key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key or gw.keys[team],
                              max_retries=0, timeout=60)


def _error_shape(body: dict) -> dict:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


async def test_missing_or_unknown_key_is_401_in_openai_shape(gateway_stack):
    async with httpx.AsyncClient(base_url=gateway_stack.url, timeout=30) as http:
        missing = await http.post("/v1/chat/completions",
                                  json={"model": "summarize", "messages": MESSAGES})
        models = await http.get("/v1/models", headers={"authorization": "Bearer nope-123"})
    assert missing.status_code == 401
    assert _error_shape(missing.json())["code"] == "invalid_api_key"
    assert models.status_code == 401

    with pytest.raises(openai.AuthenticationError) as caught:
        await _client(gateway_stack, key="sk-not-a-real-key-0000").chat.completions.create(
            model="summarize", messages=MESSAGES)
    assert caught.value.status_code == 401
    assert "sk-not-a-real-key-0000" not in caught.value.message


async def test_unknown_task_is_404_model_not_found(gateway_stack):
    with pytest.raises(openai.NotFoundError) as caught:
        await _client(gateway_stack).chat.completions.create(model="no-such-task",
                                                             messages=MESSAGES)
    error = _error_shape(caught.value.response.json())
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "no-such-task" in error["message"]
    assert caught.value.response.headers["x-request-id"].startswith("gw-")


async def test_route_outside_the_callers_team_is_403(gateway_stack):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await _client(gateway_stack, "support").chat.completions.create(
            model="research", messages=MESSAGES)
    assert _error_shape(caught.value.response.json())["code"] == "forbidden"
    allowed = await _client(gateway_stack, "research").chat.completions.create(
        model="research", messages=MESSAGES)
    assert allowed.choices[0].message.content == "[gpt-gw-mini] hello gateway"


@pytest.mark.parametrize(("team", "code", "window_s"), [
    ("broke", "budget_exceeded", 86_400), ("throttled", "quota_exceeded", 60)])
async def test_budget_and_quota_are_429_with_retry_after(gateway_stack, team, code, window_s):
    with pytest.raises(openai.RateLimitError) as caught:
        await _client(gateway_stack, team).chat.completions.create(model="summarize",
                                                                   messages=MESSAGES)
    response = caught.value.response
    assert response.status_code == 429
    assert _error_shape(response.json())["code"] == code
    assert 1 <= int(response.headers["retry-after"]) <= window_s


async def test_deadline_passes_while_the_model_hangs_is_504(gateway_stack):
    gateway_stack.script_model("gpt-slow", {"latency_ms": 60_000})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        await _client(gateway_stack).chat.completions.create(
            model="slow", messages=MESSAGES,
            extra_headers={"x-modelbus-latency-budget-ms": "500"})
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert _error_shape(caught.value.response.json())["code"] == "deadline_exceeded"
    assert elapsed < 30, f"answered after {elapsed:.1f}s: waited for the hanging model"


async def test_idempotency_key_makes_concurrent_and_later_retries_safe(gateway_stack):
    gw = gateway_stack
    gw.script_model("gpt-idem", {"latency_ms": 1500})
    before = gw.model_calls("gpt-idem")
    key = {"Idempotency-Key": f"order-{time.time_ns()}"}
    client = _client(gw)

    async def call():
        return await client.chat.completions.with_raw_response.create(
            model="idem", messages=MESSAGES, extra_headers=key)

    first, retry = await asyncio.gather(call(), call())  # a retry while in flight
    later = await call()  # a retry after it returned
    ids = {r.headers["x-request-id"] for r in (first, retry, later)}
    bodies = [r.parse() for r in (first, retry, later)]
    assert len(ids) == 1
    assert {b.id for b in bodies} == {bodies[0].id}
    assert {b.choices[0].message.content for b in bodies} == {"[gpt-idem] hello gateway"}
    assert gw.model_calls("gpt-idem") == before + 1, "the provider was called once"

    with pytest.raises(openai.ConflictError):  # same key, different call
        await client.chat.completions.create(
            model="idem", messages=[{"role": "user", "content": "something else"}],
            extra_headers=key)
    other = await client.chat.completions.with_raw_response.create(
        model="idem", messages=MESSAGES, extra_headers={"Idempotency-Key": key[
            "Idempotency-Key"] + "-b"})
    assert other.headers["x-request-id"] not in ids, "another key is another call"
