"""Embeddings: OpenAI `/v1/embeddings` through the openai SDK (float and base64, shortened
dimensions), Gemini embedContent / batchEmbedContents through google-genai and raw HTTP;
vectors are deterministic unit vectors and every input is counted in the stats."""

from __future__ import annotations

import math

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

GEMINI_HEADERS = {"x-goog-api-key": "k"}


def oai(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_sim_openai_embeddings_deterministic_default_dims(sim):
    r = oai(sim).embeddings.create(model="text-embedding-3-small", input=["alpha", "beta", "alpha"])
    vecs = [d.embedding for d in r.data]  # the SDK asked for base64 and decoded it
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(len(v) == 1536 for v in vecs)
    assert vecs[0] == vecs[2] and vecs[0] != vecs[1]
    assert abs(norm(vecs[0]) - 1) < 1e-5
    assert r.usage.prompt_tokens == 3 and r.model == "text-embedding-3-small"
    one = oai(sim).embeddings.create(model="text-embedding-3-small", input="alpha",
                                     encoding_format="float")
    assert one.data[0].embedding == pytest.approx(vecs[0], abs=1e-6)
    large = oai(sim).embeddings.create(model="text-embedding-3-large", input="alpha")
    assert len(large.data[0].embedding) == 3072


def test_sim_openai_embeddings_dimensions_and_counts(sim):
    r = oai(sim).embeddings.create(model="text-embedding-3-small", input=["a b", "c"], dimensions=256)
    assert all(len(d.embedding) == 256 for d in r.data)
    assert abs(norm(r.data[0].embedding) - 1) < 1e-5
    sim.set_behaviour("my-embedder", embedding_dim=64)
    r = oai(sim).embeddings.create(model="my-embedder", input="x")
    assert len(r.data[0].embedding) == 64
    stats = sim.stats()["embeddings"]
    assert stats["text-embedding-3-small"] == {"calls": 1, "inputs": 2}
    assert stats["my-embedder"] == {"calls": 1, "inputs": 1}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, "max number of inputs"),
        ({"model": "text-embedding-ada-002", "input": "x", "dimensions": 8}, "dimensions"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 4096}, "dimensions"),
    ],
)
def test_sim_openai_embeddings_refusals(sim, kwargs, match):
    with pytest.raises(openai.BadRequestError, match=match):
        oai(sim).embeddings.create(**kwargs)
    assert sim.stats()["embeddings"] == {}


def test_sim_openai_embeddings_scripted_failure(sim):
    sim.set_behaviour("text-embedding-3-small", fail_first=1, failure={"status": 429})
    with pytest.raises(openai.RateLimitError):
        oai(sim).embeddings.create(model="text-embedding-3-small", input="x")
    assert oai(sim).embeddings.create(model="text-embedding-3-small", input="x").data


def test_sim_gemini_embed_content_sdk(sim):
    gem = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url))
    try:
        r = gem.models.embed_content(model="gemini-embedding-001", contents=["one", "two", "one"])
        vecs = [e.values for e in r.embeddings]
        assert [len(v) for v in vecs] == [3072] * 3 and vecs[0] == vecs[2] != vecs[1]
        r = gem.models.embed_content(
            model="text-embedding-004", contents="one",
            config=types.EmbedContentConfig(output_dimensionality=128),
        )
        assert len(r.embeddings[0].values) == 128
        with pytest.raises(errors.ClientError, match="at most 100"):
            gem.models.embed_content(model="gemini-embedding-001", contents=["t"] * 101)
    finally:
        gem.close()
    assert sim.stats()["embeddings"]["gemini-embedding-001"] == {"calls": 1, "inputs": 3}


def test_sim_gemini_embed_content_single_http(sim):
    url = f"{sim.gemini_base_url}/v1beta/models/text-embedding-004:embedContent"
    body = {"content": {"parts": [{"text": "one"}]}}
    r = httpx.post(url, json=body, headers=GEMINI_HEADERS)
    assert r.status_code == 200 and len(r.json()["embedding"]["values"]) == 768
    r = httpx.post(url, json={"content": {"parts": []}}, headers=GEMINI_HEADERS)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_sim_testing_helpers_count_embedding_inputs_and_switch_rules(sim):
    from types import SimpleNamespace

    from modelbus_testing.simulator import embedding_inputs, simulate_rules

    stack = SimpleNamespace(simulator_url=sim.base_url)
    oai(sim).embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
    assert embedding_inputs(stack) == 3 and embedding_inputs(stack, "text-embedding-3-small") == 3
    assert embedding_inputs(stack, "other") == 0
    simulate_rules(stack, **{"openai.embeddings_input": False})
    assert oai(sim).embeddings.create(model="text-embedding-3-small", input="").data
