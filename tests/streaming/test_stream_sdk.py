"""Streaming through the gateway with the official ``openai`` SDK (``stream=True``), for each
provider: the first content chunk arrives early and the chunks make the whole reply, with a
usage chunk when ``stream_options.include_usage`` asks; a provider stream broken after some
deltas ends the SDK's stream with an error; a JSON answer streams only once checked and a
refused one never."""

from __future__ import annotations

import json
import time

import jsonschema
import openai
import pytest
from modelbus_testing.simulator import provider_calls, simulate

from tests.streaming.stream_client import REPLY, REPLY_WORDS, streaming_behaviour
from tests.surface.conftest import CHAT_MODELS
from tests.surface.surface_cases import ANSWER_SCHEMA

pytestmark = pytest.mark.e2e
#: Providers whose JSON answer is text the worker parses. Anthropic's comes from a forced tool
#: whose input is always a JSON object, so nothing refuses it without a policy output guard.
TEXT_JSON_PROVIDERS = ["openai", "gemini", "selfhosted"]

ASK = [{"role": "user", "content": "Tell me a long story."}]
JSON_ASK = [{"role": "user", "content": "Weather in Paris as JSON."}]
JSON_FORMAT = {"type": "json_schema",
               "json_schema": {"name": "weather", "strict": True, "schema": ANSWER_SCHEMA}}


@pytest.fixture(scope="module")
def client(stream_stack) -> openai.OpenAI:
    sdk = openai.OpenAI(base_url=stream_stack.gateway_url + "/v1",
                        api_key=stream_stack.api_key, timeout=90, max_retries=0)
    sdk.chat.completions.create(model="chat-openai", messages=ASK)  # the client's first call
    return sdk


class Received:
    """The chunks of one streamed completion, each with its arrival time (seconds after the
    call began), kept even when the stream ends in an exception."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, object]] = []
        self.total_s = 0.0

    def read(self, client: openai.OpenAI, **kw) -> Received:
        started = time.monotonic()
        try:
            for chunk in client.chat.completions.create(stream=True, **kw):
                self.chunks.append((time.monotonic() - started, chunk))
        finally:
            self.total_s = time.monotonic() - started
        return self

    @property
    def content(self) -> list[tuple[float, str]]:
        return [(t, c.choices[0].delta.content) for t, c in self.chunks
                if c.choices and c.choices[0].delta.content]

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.content)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_the_first_content_chunk_arrives_early_and_the_chunks_make_the_reply(client,
                                                                              provider):
    got = Received().read(client, model=f"chat-{provider}", messages=ASK,
                          stream_options={"include_usage": True})
    assert got.content, got.chunks
    first = got.content[0][0]
    assert first < 0.25 * got.total_s, (first, got.total_s)
    assert got.text == REPLY
    finishes = [c.choices[0].finish_reason for _, c in got.chunks
                if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c for _, c in got.chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].choices == [], usage
    assert usage[0].usage.completion_tokens == REPLY_WORDS
    assert got.chunks[-1][1] is usage[0]  # the usage chunk comes last, as OpenAI sends it


def test_no_usage_chunk_unless_asked(client):
    got = Received().read(client, model="chat-openai", messages=ASK)
    assert got.text == REPLY
    assert all(c.usage is None for _, c in got.chunks)


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_a_stream_broken_after_some_deltas_ends_the_sdk_stream_with_an_error(
        client, stream_stack, provider):
    model = CHAT_MODELS[provider]
    calls = provider_calls(stream_stack.stack, model)
    simulate(stream_stack.stack, model,
             **streaming_behaviour(fail_first=1, failure={"kind": "truncate"}))
    got = Received()
    try:
        with pytest.raises(openai.APIError) as raised:
            got.read(client, model=f"chat-{provider}", messages=ASK)
    finally:
        simulate(stream_stack.stack, model, **streaming_behaviour())
    error = raised.value
    assert "stream_interrupted" in f"{error} {getattr(error, 'body', '')}", error
    assert got.text and REPLY.startswith(got.text) and len(got.text) < len(REPLY)
    assert provider_calls(stream_stack.stack, model) - calls == 1


@pytest.mark.parametrize("provider", list(CHAT_MODELS))
def test_a_json_answer_streams_once_checked(client, provider):
    got = Received().read(client, model=f"chat-{provider}", messages=JSON_ASK,
                          response_format=JSON_FORMAT)
    jsonschema.validate(json.loads(got.text), ANSWER_SCHEMA)


@pytest.mark.parametrize("provider", TEXT_JSON_PROVIDERS)
def test_a_json_answer_the_check_refuses_never_reaches_the_sdk(client, stream_stack, provider):
    model = CHAT_MODELS[provider]
    simulate(stream_stack.stack, model,
             **streaming_behaviour(reply="REFUSED not JSON", break_schema=True))
    got = Received()
    try:
        with pytest.raises(openai.APIError):
            got.read(client, model=f"chat-{provider}", messages=JSON_ASK,
                     response_format=JSON_FORMAT)
    finally:
        simulate(stream_stack.stack, model, **streaming_behaviour())
    assert "REFUSED" not in got.text
