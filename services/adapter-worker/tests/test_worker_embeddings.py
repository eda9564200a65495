"""Embeddings: the wire bodies (OpenAI / self-hosted ``/embeddings``, Gemini
``batchEmbedContents``), batches split at the provider's limit and put back in input order,
the embedding cache in the machine's Redis (cached inputs are not sent again and cost
nothing), and Anthropic's clear refusal. A transport that answers from the request body
stands in for HTTP (the real-HTTP path is in tests/worker)."""

from __future__ import annotations

import uuid

import orjson
import pytest
import redis.asyncio as aioredis
from modelbus_adapter_worker.adapters import build_adapter, build_embedder
from modelbus_adapter_worker.embed_cache import EmbeddingCache
from modelbus_adapter_worker.executor import Executor
from modelbus_adapter_worker.outcome import result_of
from modelbus_schemas import ErrorCode
from worker_wire_helpers import task


def vector(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 97), 0.5]


class EchoTransport:
    """Answers every embedding request as the provider would, from its own body."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    async def call(self, adapter, request, timeout_s, sink=None):
        self.bodies.append(request.json)
        if "requests" in request.json:  # Gemini
            texts = [r["content"]["parts"][0]["text"] for r in request.json["requests"]]
            body = {"embeddings": [{"values": vector(t)} for t in texts]}
        else:
            texts = request.json["input"]
            rows = [{"object": "embedding", "index": i, "embedding": vector(t)}
                    for i, t in enumerate(texts)]
            body = {"data": rows[::-1], "model": request.json["model"],  # any order
                    "usage": {"prompt_tokens": 2 * len(texts), "total_tokens": 2 * len(texts)}}
        return adapter.parse(orjson.dumps(body), request)


def embed_task(provider, model, inputs, tenant=None, **params):
    return task(provider, model, operation="embed", input=inputs,
                caller={"tenant": tenant or f"t-{uuid.uuid4().hex[:8]}"}, params=params)


@pytest.fixture
async def cache(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield EmbeddingCache(client, ttl_s=60)
    await client.aclose()


def executor(provider, transport, cache=None):
    return Executor(build_adapter(provider, "k"), transport,
                    embedder=build_embedder(provider, "k"), embed_cache=cache)


def test_worker_embeddings_openai_and_gemini_bodies():
    t = embed_task("openai", "text-embedding-3-small", ["a", "b"], dimensions=256)
    (req,) = build_embedder("openai", "k").build(t, ["a", "b"])
    assert (req.path, req.json) == ("/embeddings", {
        "model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float",
        "dimensions": 256})
    t = embed_task("gemini", "gemini-embedding-001", ["a"], dimensions=768)
    (req,) = build_embedder("gemini", "k").build(t, ["a"])
    assert req.path == "/models/gemini-embedding-001:batchEmbedContents"
    assert req.json == {"requests": [{"model": "models/gemini-embedding-001",
                                      "content": {"parts": [{"text": "a"}]},
                                      "outputDimensionality": 768}]}
    assert build_embedder("anthropic", "k") is None


@pytest.mark.parametrize(("provider", "model", "count", "calls"), [
    ("gemini", "gemini-embedding-001", 250, [100, 100, 50]),
    ("openai", "text-embedding-3-small", 2100, [2048, 52]),
    ("selfhosted", "bge-m3", 3, [3]),
])
async def test_worker_embeddings_split_at_the_batch_limit_in_input_order(
        provider, model, count, calls):
    transport = EchoTransport()
    inputs = [f"text number {i}" for i in range(count)]
    t = embed_task(provider, model, inputs)
    run = await executor(provider, transport).run(t)
    sizes = [len(b.get("requests") or b.get("input")) for b in transport.bodies]
    assert run.stop == "ok" and sizes == calls
    result = result_of(t, run)
    assert result.embeddings == [vector(x) for x in inputs] and result.text is None


async def test_worker_embedding_cache_sends_only_missing_inputs_and_cached_cost_nothing(cache):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    model = "text-embedding-3-small"
    transport = EchoTransport()
    first = embed_task("openai", model, ["alpha", "beta", "alpha"], tenant)
    run = await executor("openai", transport, cache).run(first)
    assert transport.bodies[-1]["input"] == ["alpha", "beta"]  # each distinct text once
    assert result_of(first, run).usage.input_tokens == 4

    second = embed_task("openai", model, ["beta", "gamma", "alpha"], tenant)
    run = await executor("openai", transport, cache).run(second)
    result = result_of(second, run)
    assert transport.bodies[-1]["input"] == ["gamma"]
    assert result.embeddings == [vector("beta"), vector("gamma"), vector("alpha")]
    assert result.usage.input_tokens == 2 and result.cost_usd == pytest.approx(2 * 0.02 / 1e6)

    calls = len(transport.bodies)
    third = embed_task("openai", model, ["alpha"], tenant)
    result = result_of(third, await executor("openai", transport, cache).run(third))
    assert len(transport.bodies) == calls, "all cached: no provider call"
    assert result.embeddings == [vector("alpha")] and result.cost_usd == 0
    assert result.usage.input_tokens == 0 and result.status == "ok"

    other = embed_task("openai", model, ["alpha"])  # another tenant: its own cache
    await executor("openai", transport, cache).run(other)
    assert transport.bodies[-1]["input"] == ["alpha"]
    dims = embed_task("openai", model, ["alpha"], tenant, dimensions=64)  # other dimensions
    await executor("openai", transport, cache).run(dims)
    assert transport.bodies[-1] == {"model": model, "input": ["alpha"],
                                    "encoding_format": "float", "dimensions": 64}


async def test_worker_embeddings_on_anthropic_are_a_clear_terminal_error():
    transport = EchoTransport()
    t = embed_task("anthropic", "claude-haiku-4-5", ["x"])
    result = result_of(t, await executor("anthropic", transport).run(t))
    assert transport.bodies == []
    assert result.status == "error" and result.error.code == ErrorCode.INVALID_REQUEST
    assert "no embeddings API" in result.error.message


def test_worker_openai_embedding_batches_stay_under_the_token_limit():
    from modelbus_adapter_worker.adapters.embeddings import OPENAI_BATCH_CHARS, batches

    big = "x" * 250_000
    assert [len(b) for b in batches([big, big, big, "y"], 2048, OPENAI_BATCH_CHARS)] == [2, 2]
    assert batches(["a" * 700_000, "b"], 2048, OPENAI_BATCH_CHARS) == [["a" * 700_000], ["b"]]
    assert batches([], 100) == []
