"""``stream=True`` through a real gateway process and the session's broker, with the test
playing the workers and the aggregator: it reads the gateway's request event off the
requests topic, publishes signed stream events on ``modelbus.stream.v1`` and, when it
chooses, the final response on the gateway's reply topic. The official ``openai`` SDK
reads the stream: chunks arrive while the response is not published yet, the text equals
the final response's (what did not stream comes from it), a forged (unsigned) stream event
never reaches the caller, a stream broken after its first delta ends in an error the SDK
raises, a call nothing streams for is answered from its response alone, and a caller that
hangs up releases its stream. The example Kafka consumer (examples/stream_consumer.py)
follows one request's events in order to its response."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import openai
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from modelbus_cli.stack import Stack
from modelbus_gateway.auth import hash_key
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import Signer
from modelbus_schemas import ErrorCode, ErrorInfo, ResponseEvent, StreamEvent, Usage, encode
from modelbus_schemas.cloudevents import ce_headers
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import STREAM

from tests.upstream import REQUESTS, TailReader

pytestmark = pytest.mark.e2e

POLICY = "catalog:\n  mini: {provider: openai, model: gpt-mini}\n" \
         "routes:\n  chat: {strategy: single, targets: [{model: mini}]}\n"


class Bus:
    """The test's side of the broker: the requests the gateway publishes, and signed
    stream events and responses for them."""

    def __init__(self, bootstrap: str) -> None:
        self.requests = TailReader(bootstrap, REQUESTS)
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        self.ring = RuntimeSettings().signing_ring()  # the session's ring, as the gateway's

    async def __aenter__(self) -> Self:
        await self.requests.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.requests.stop()
        await self.producer.stop()

    async def request(self, marker: str) -> dict:
        [record] = await self.requests.collect(lambda r: marker.encode() in r.value, 1, 30)
        return json.loads(record.value)

    async def publish(self, topic: str, key: str, event, role: str | None) -> None:
        value, key_bytes = encode(event), key.encode()
        headers = ce_headers(event_id=event.event_id, ce_type=event.CE_TYPE, source="/test")
        if role is not None:
            headers.append(Signer(self.ring, role).header(
                topic, key_bytes, value, event.event_id.encode(), event.CE_TYPE.encode()))
        await self.producer.send_and_wait(topic, value, key=key_bytes, headers=headers)

    async def stream(self, request: dict, seq: int, text: str = "", kind: str = "delta",
                     role: str | None = "adapter-worker", **extra) -> None:
        tenant, rid = request["caller"]["tenant"], request["request_id"]
        scope = scoped_id(tenant, rid)
        event = StreamEvent(event_id=StreamEvent.make_id(scope, seq), request_id=rid,
                            tenant=tenant, task=request["task"], seq=seq, kind=kind,
                            provider="openai", model="gpt-mini", text=text,
                            created_at=datetime.now(UTC), **extra)
        await self.publish(STREAM, scope, event, role)

    async def respond(self, request: dict, output: str | None, status: str = "ok",
                      **extra) -> None:
        tenant, rid = request["caller"]["tenant"], request["request_id"]
        response = ResponseEvent(
            event_id=ResponseEvent.make_id(scoped_id(tenant, rid)), request_id=rid,
            tenant=tenant, task=request["task"], status=status, output=output,
            models=["openai/gpt-mini"],
            usage=Usage(input_tokens=3, output_tokens=5), created_at=datetime.now(UTC),
            **extra)
        await self.publish(request["reply_to"], rid, response, "aggregator")


class Gw:
    def __init__(self, url: str, key: str, bootstrap: str) -> None:
        self.url, self.key, self.bootstrap = url, key, bootstrap

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0,
                                  timeout=60)

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        want = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and all(w in line for w in want))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp(f"gw-stream-{uuid.uuid4().hex[:6]}")
    (workdir / "policy.yaml").write_text(POLICY)
    key = f"sk-stream-{uuid.uuid4().hex}"
    entry = {"key_sha256": hash_key(key), "tenant": f"st-{uuid.uuid4().hex[:6]}", "team": "x"}
    stack = Stack(workdir)
    stack.bootstrap, stack.redis_url = kafka_bootstrap, redis_url
    try:
        stack.start_service("gateway", "modelbus_gateway.app", {
            "MODELBUS_POLICY_PATH": str(workdir / "policy.yaml"),
            "MODELBUS_API_KEYS": json.dumps([entry]),
            "MODELBUS_DEFAULT_LATENCY_BUDGET_MS": "60000"})
        stack.wait_ready()
        yield Gw(stack.health["gateway"], key, kafka_bootstrap)
    finally:
        stack.stop()


def _create(gw: Gw, marker: str, **extra):
    return asyncio.ensure_future(gw.client().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": f"say hello {marker}"}],
        stream=True, **extra))


async def _next_content(chunks) -> str:
    """The content of the next chunk that has some."""
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            return chunk.choices[0].delta.content
    raise AssertionError("the stream ended")


async def test_chunks_arrive_before_the_response_and_the_response_completes_them(gateway):
    marker = uuid.uuid4().hex[:8]
    routed = gateway.metric("modelbus_gateway_stream_events_total", outcome="routed")
    refused = gateway.metric("modelbus_gateway_stream_events_total", outcome="unauthenticated")
    firsts = gateway.metric("modelbus_gateway_stream_first_byte_seconds_count", source="stream")
    async with Bus(gateway.bootstrap) as bus:
        call = _create(gateway, marker, stream_options={"include_usage": True})
        request = await bus.request(marker)
        assert request["stream"] is True, "stream=True asks modelbus for stream events"
        await bus.stream(request, 0, "FORGED ", role=None)  # unsigned: dropped
        await bus.stream(request, 0, "Hello")
        stream = await asyncio.wait_for(call, 30)  # headers came with the first delta
        chunks = stream.__aiter__()
        first = await asyncio.wait_for(anext(chunks), 30)
        assert first.choices[0].delta.role == "assistant"
        assert await asyncio.wait_for(_next_content(chunks), 30) == "Hello"
        await bus.stream(request, 1, ", world")
        await bus.stream(request, 1, ", world")  # a duplicate: ignored
        assert await asyncio.wait_for(_next_content(chunks), 30) == ", world"
        await bus.stream(request, 2, kind="end", finish_reason="stop")
        # the response is the source of truth: what did not stream comes from it
        await bus.respond(request, "Hello, world and the rest", finish_reason="stop")
        rest = [c async for c in chunks]
    text = "Hello, world" + "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text == "Hello, world and the rest"
    assert "FORGED" not in text
    assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
    assert rest[-1].choices == [] and rest[-1].usage.total_tokens == 8
    assert len({first.id, *(c.id for c in rest)}) == 1
    assert gateway.metric("modelbus_gateway_stream_events_total",
                          outcome="unauthenticated") - refused == 1
    # Hello, ", world" and (unless the response closed the call before it was read) the end
    assert 2 <= gateway.metric("modelbus_gateway_stream_events_total",
                               outcome="routed") - routed <= 3
    assert gateway.metric("modelbus_gateway_stream_first_byte_seconds_count",
                          source="stream") - firsts == 1


async def test_a_stream_broken_after_its_first_delta_ends_in_an_error(gateway):
    marker = uuid.uuid4().hex[:8]
    async with Bus(gateway.bootstrap) as bus:
        call = _create(gateway, marker)
        request = await bus.request(marker)
        await bus.stream(request, 0, "Partial")
        chunks = (await asyncio.wait_for(call, 30)).__aiter__()
        assert await asyncio.wait_for(_next_content(chunks), 30) == "Partial"
        await bus.stream(request, 1, kind="error", error=ErrorInfo(
            code=ErrorCode.STREAM_INTERRUPTED, message="the provider's stream broke"))
        with pytest.raises(openai.APIError) as raised:
            await asyncio.wait_for(_next_content(chunks), 30)
    assert "the provider's stream broke" in str(raised.value)
    assert raised.value.code == "stream_interrupted"


async def test_a_call_nothing_streams_for_is_answered_from_its_response(gateway):
    marker = uuid.uuid4().hex[:8]
    fallbacks = gateway.metric("modelbus_gateway_stream_first_byte_seconds_count",
                               source="response")
    async with Bus(gateway.bootstrap) as bus:
        call = _create(gateway, marker)
        request = await bus.request(marker)
        await bus.respond(request, "an ensemble's answer, whole", finish_reason="stop")
        chunks = [c async for c in await asyncio.wait_for(call, 30)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == \
        "an ensemble's answer, whole"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert gateway.metric("modelbus_gateway_stream_first_byte_seconds_count",
                          source="response") - fallbacks == 1


async def test_an_error_response_before_any_delta_is_an_http_error(gateway):
    marker = uuid.uuid4().hex[:8]
    async with Bus(gateway.bootstrap) as bus:
        call = _create(gateway, marker)
        request = await bus.request(marker)
        await bus.respond(request, None, status="error", error=ErrorInfo(
            code=ErrorCode.QUOTA_EXCEEDED, message="quota: 0 requests per minute"))
        with pytest.raises(openai.RateLimitError):
            await asyncio.wait_for(call, 30)


async def _until(probe, timeout: float = 30.0) -> bool:
    for _ in range(int(timeout / 0.1)):
        if probe():
            return True
        await asyncio.sleep(0.1)
    return probe()


async def test_a_caller_that_goes_away_releases_its_stream(gateway):
    marker = uuid.uuid4().hex[:8]
    async with Bus(gateway.bootstrap) as bus:
        call = _create(gateway, marker)
        request = await bus.request(marker)
        await bus.stream(request, 0, "Hello")
        stream = await asyncio.wait_for(call, 30)
        assert await asyncio.wait_for(_next_content(stream.__aiter__()), 30) == "Hello"
        assert gateway.metric("modelbus_gateway_streaming_calls") >= 1
        await stream.close()  # the caller hangs up mid-stream
        assert await _until(lambda: gateway.metric("modelbus_gateway_streaming_calls") == 0)
        routed = gateway.metric("modelbus_gateway_stream_events_total", outcome="routed")
        await bus.stream(request, 1, " again")  # nobody holds the call any more
        assert await _until(lambda: gateway.metric(
            "modelbus_gateway_stream_events_total", outcome="ignored") > 0)
    assert gateway.metric("modelbus_gateway_stream_events_total", outcome="routed") == routed


def _example_consumer():
    path = Path(__file__).resolve().parents[2] / "examples" / "stream_consumer.py"
    spec = importlib.util.spec_from_file_location("stream_consumer_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_consumer_follows_one_request_in_order_to_its_response(gateway):
    example = _example_consumer()
    tenant, rid = f"ex-{uuid.uuid4().hex[:6]}", f"req-{uuid.uuid4().hex[:8]}"
    request = {"caller": {"tenant": tenant}, "request_id": rid, "task": "chat",
               "reply_to": example.RESPONSES}
    other = {**request, "request_id": rid + "-other"}
    consumer = AIOKafkaConsumer(bootstrap_servers=gateway.bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    seen: list[dict] = []
    try:
        await example.at_end(consumer, [STREAM, example.RESPONSES])
        follower = asyncio.create_task(example.follow(consumer, tenant, rid, seen.append))
        async with Bus(gateway.bootstrap) as bus:
            await bus.stream(other, 0, "not this request")
            await bus.stream(request, 0, "one ")
            await bus.stream(request, 0, "one ")  # delivered twice
            await bus.stream(request, 1, "two", kind="end", finish_reason="stop")
            assert await _until(lambda: len(seen) == 2)
            await bus.respond(request, "one two", finish_reason="stop")
            response = await asyncio.wait_for(follower, 60)
    finally:
        await consumer.stop()
    assert [(e["seq"], e["kind"], e["text"]) for e in seen] == [
        (0, "delta", "one "), (1, "end", "two")]
    assert response["output"] == "one two" == "".join(e["text"] for e in seen)


async def test_a_stream_that_fails_before_any_output_is_an_http_error(gateway):
    marker = uuid.uuid4().hex[:8]
    failed = ErrorInfo(code=ErrorCode.STREAM_INTERRUPTED, message="broke before any text")
    async with Bus(gateway.bootstrap) as bus:
        call = _create(gateway, marker)
        request = await bus.request(marker)
        await bus.stream(request, 0, kind="error", error=failed)
        await asyncio.sleep(0.5)
        assert not call.done(), "nothing to show yet: the response decides"
        await bus.respond(request, None, status="error", error=failed)
        with pytest.raises(openai.InternalServerError) as raised:
            await asyncio.wait_for(call, 30)
    assert raised.value.status_code == 502 and raised.value.code == "stream_interrupted"
