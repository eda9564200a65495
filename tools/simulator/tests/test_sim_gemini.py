"""The official google-genai SDK against the simulator: plain, streamed, scripted failures."""

from __future__ import annotations

import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

PROMPT = "list the planets of the solar system in order"


@pytest.fixture
def gem(sim):
    # Keep the Client referenced while it is used: its destructor closes the http client.
    c = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url))
    yield c
    c.close()


def test_sim_gemini_generate_content(sim, gem):
    r = gem.models.generate_content(
        model="gemini-2.5-flash",
        contents=PROMPT,
        config=types.GenerateContentConfig(system_instruction="answer briefly", temperature=0.2),
    )
    assert r.text == "[gemini-2.5-flash] list the planets of the solar system in"
    cand = r.candidates[0]
    assert cand.content.role == "model" and cand.finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count == 11  # 2 system + 9 user
    assert r.usage_metadata.candidates_token_count == 9
    assert r.usage_metadata.total_token_count == 20
    assert r.model_version == "gemini-2.5-flash" and r.response_id


async def test_sim_gemini_async_max_output_tokens(sim, gem):
    r = await gem.aio.models.generate_content(
        model="g", contents=PROMPT, config=types.GenerateContentConfig(max_output_tokens=3)
    )
    assert r.text == "[g] list the"
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata.candidates_token_count == 3


def test_sim_gemini_stream(sim, gem):
    sim.set_behaviour("g", reply="Mercury Venus Earth Mars")
    chunks = list(gem.models.generate_content_stream(model="g", contents=PROMPT))
    assert len(chunks) == 4
    assert "".join(c.text for c in chunks) == "Mercury Venus Earth Mars"
    assert [c.candidates[0].finish_reason for c in chunks][-1] == types.FinishReason.STOP
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata.candidates_token_count == 4


async def test_sim_gemini_async_stream_multi_turn(sim, gem):
    contents = [
        types.Content(role="user", parts=[types.Part(text="hello")]),
        types.Content(role="model", parts=[types.Part(text="hi there")]),
        types.Content(role="user", parts=[types.Part(text="second question")]),
    ]
    stream = await gem.aio.models.generate_content_stream(model="g", contents=contents)
    chunks = [c async for c in stream]
    assert "".join(c.text for c in chunks) == "[g] second question"
    assert chunks[-1].usage_metadata.prompt_token_count == 5


def test_sim_gemini_key_query_param_and_missing_key(sim, gem):
    url = sim.base_url + "/v1beta/models/g:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert httpx.post(url, params={"key": "k"}, json=body).json()["candidates"][0]["content"][
        "parts"
    ]
    r = httpx.post(url, json=body)
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"


def test_sim_gemini_429_resource_exhausted(sim, gem):
    sim.set_behaviour("g", fail_first=1, failure={"status": 429, "retry_after_s": 3})
    with pytest.raises(errors.ClientError) as ei:
        gem.models.generate_content(model="g", contents=PROMPT)
    assert ei.value.code == 429 and ei.value.status == "RESOURCE_EXHAUSTED"
    assert ei.value.response.headers["retry-after"] == "3"
    assert ei.value.details["error"]["details"][0]["retryDelay"] == "3s"


@pytest.mark.parametrize(("status", "name"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_sim_gemini_server_errors(sim, gem, status, name):
    sim.set_behaviour("g", fail_first=1, failure={"status": status, "message": "down"})
    with pytest.raises(errors.ServerError) as ei:
        gem.models.generate_content(model="g", contents=PROMPT)
    assert ei.value.code == status and ei.value.status == name and ei.value.message == "down"


def test_sim_gemini_malformed(sim, gem):
    sim.set_behaviour("g", fail_first=1, failure={"kind": "malformed"})
    with pytest.raises(json.JSONDecodeError):
        gem.models.generate_content(model="g", contents=PROMPT)


def test_sim_gemini_truncated_stream_has_no_finish_reason(sim, gem):
    sim.set_behaviour("g", fail_first=1, failure={"kind": "truncate"})
    url = sim.base_url + "/v1beta/models/g:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    with httpx.stream(
        "POST", url, params={"alt": "sse"}, json=body, headers={"x-goog-api-key": "k"}
    ) as r:
        payloads = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: ")]
    assert r.status_code == 200 and payloads
    assert all("finishReason" not in p["candidates"][0] for p in payloads)
    # the SDK simply sees a stream that stops early
    sim.set_behaviour("g", fail_first=1, failure={"kind": "truncate"})
    chunks = list(gem.models.generate_content_stream(model="g", contents=PROMPT))
    assert chunks and all(c.candidates[0].finish_reason is None for c in chunks)
    assert "".join(c.text for c in chunks) == "[g] list the planets "


def test_sim_gemini_stream_without_alt_sse_is_a_json_array(sim):
    url = sim.base_url + "/v1beta/models/g:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "one two three"}]}]}
    chunks = httpx.post(url, json=body, headers={"x-goog-api-key": "k"}).json()
    assert isinstance(chunks, list) and len(chunks) == 4
    assert (
        "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
        == "[g] one two three"
    )
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 4
