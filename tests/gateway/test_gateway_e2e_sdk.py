"""The official ``openai`` SDK against the gateway, end to end through the broker, router, an
openai worker (simulator over HTTP), the aggregator and audit: sync and async, plain and
streamed; response headers; complete lineage; /v1/models under RBAC; many calls at once."""

from __future__ import annotations

import asyncio

import openai
import pytest
from modelbus_audit.store import AuditStore

pytestmark = pytest.mark.e2e

COMPLETE = {"request", "task", "result", "response"}
PROMPT = [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "Summarise: Kafka is a distributed log"}]
EXPECTED = "[gpt-gw-mini] Summarise: Kafka is a distributed log"


def _client(gw, team: str = "support") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=gw.keys[team], max_retries=0, timeout=60)


def _async_client(gw, team: str = "support") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=gw.keys[team], max_retries=0,
                              timeout=60)


async def _lineage_kinds(url: str, request_id: str, timeout: float = 30.0) -> set[str]:
    store = await AuditStore.open(url)
    try:
        kinds: set[str] = set()
        for _ in range(int(timeout / 0.25)):
            kinds = {row.kind for row in await store.lineage(request_id)}
            if COMPLETE <= kinds:
                break
            await asyncio.sleep(0.25)
        return kinds
    finally:
        await store.close()


async def test_an_answer_cut_at_max_tokens_says_length(gateway_stack):
    completion = await _async_client(gateway_stack).chat.completions.create(
        model="summarize", messages=PROMPT, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == " ".join(EXPECTED.split()[:3])
    assert completion.usage.completion_tokens == 3


async def test_sync_plain_call_answers_with_headers_and_complete_lineage(gateway_stack):
    gw = gateway_stack
    raw = await asyncio.to_thread(
        _client(gw).chat.completions.with_raw_response.create,
        model="summarize", messages=PROMPT, max_tokens=50)
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]

    assert completion.choices[0].message.content == EXPECTED
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "summarize"
    assert completion.usage.completion_tokens == len(EXPECTED.split())
    assert completion.usage.total_tokens == (completion.usage.prompt_tokens
                                             + completion.usage.completion_tokens)
    assert raw.headers["x-modelbus-models"] == "openai/gpt-gw-mini"
    assert request_id.startswith("gw-")

    kinds = await _lineage_kinds(gw.stack.database_url, request_id)
    assert COMPLETE <= kinds, kinds
    store = await AuditStore.open(gw.stack.database_url)
    try:
        rows = await store.lineage(request_id)
    finally:
        await store.close()
    assert gw.keys["support"] not in repr(rows), "the API key never reaches the audit store"


async def test_sync_stream_yields_role_content_finish_and_usage(gateway_stack):
    gw = gateway_stack

    def stream():
        raw = _client(gw).chat.completions.with_raw_response.create(
            model="summarize", messages=PROMPT, stream=True,
            stream_options={"include_usage": True})
        return raw.headers, list(raw.parse())

    headers, chunks = await asyncio.to_thread(stream)
    content_chunks = [c for c in chunks if c.choices]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == EXPECTED
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(text.split())
    assert len({c.id for c in chunks}) == 1
    assert headers["x-modelbus-models"] == "openai/gpt-gw-mini"
    assert COMPLETE <= await _lineage_kinds(gw.stack.database_url, headers["x-request-id"])


async def test_async_plain_and_stream(gateway_stack):
    client = _async_client(gateway_stack)
    plain = await client.chat.completions.create(model="summarize", messages=PROMPT)
    assert plain.choices[0].message.content == EXPECTED

    stream = await client.chat.completions.create(model="summarize", messages=PROMPT,
                                                  stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EXPECTED
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks), "no usage chunk unless asked for"
    await client.close()


async def test_many_concurrent_calls_each_get_their_own_answer(gateway_stack):
    client = _async_client(gateway_stack)
    prompts = [f"question number {i} about logs" for i in range(60)]
    raws = await asyncio.gather(*(
        client.chat.completions.with_raw_response.create(
            model="summarize", messages=[{"role": "user", "content": p}])
        for p in prompts))
    answers = [r.parse().choices[0].message.content for r in raws]
    assert answers == [f"[gpt-gw-mini] {p}" for p in prompts]
    assert len({r.headers["x-request-id"] for r in raws}) == len(prompts)
    await client.close()


async def test_models_lists_the_tasks_the_caller_may_use(gateway_stack):
    support = await _async_client(gateway_stack, "support").models.list()
    research = await _async_client(gateway_stack, "research").models.list()
    assert {m.id for m in support.data} == {"summarize", "slow", "idem"}
    assert {m.id for m in research.data} == {"summarize", "slow", "idem", "research"}
    assert all(m.object == "model" for m in research.data)
