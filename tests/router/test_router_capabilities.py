"""Every row of the provider table of issue 19, and capability routing, through the whole
request path: a plain aiokafka producer, the real router on the broker, a worker per
provider, the aggregator, and the simulator with the providers' request rules switched on
(the Anthropic role-order rules too, which its current reference no longer states).

Each row is normalised (by the worker) and answered ``ok`` by the provider the route names;
a request no model of its route can serve gets a clear error naming the limit and reaches
no provider; a request a model cannot serve is rerouted to one that can, with the reason on
the decision; embed requests are answered with vectors by each provider; a 5 MB request of
images is answered through the claim check, and its blobs are gone after retention.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from modelbus_runtime.claimcheck import BlobMissing, resolve_messages
from modelbus_runtime.claimcheck_store import open_blob_store
from modelbus_schemas import ChatMessage
from modelbus_testing.pg import temporary_postgres_database

from tests.conftest import start_routed_stack
from tests.upstream import REQUESTS, RESPONSES, Upstream, ce_headers, request_json

pytestmark = pytest.mark.e2e

POLICY = """
catalog:
  gpt: {provider: openai, model: gpt-4o-mini}
  o3: {provider: openai, model: o3-mini}
  claude: {provider: anthropic, model: claude-sonnet-4-5}
  gemini: {provider: gemini, model: gemini-2.5-flash}
  local: {provider: selfhosted, model: llama-3.1-8b-instruct}
  local-chat-only: {provider: selfhosted, model: llama-3.1-8b-instruct, capabilities: [chat]}
  emb-openai: {provider: openai, model: text-embedding-3-small}
  emb-gemini: {provider: gemini, model: gemini-embedding-001}
  emb-local: {provider: selfhosted, model: nomic-embed-text, capabilities: [embeddings]}
routes:
  on-openai: {targets: [{model: gpt}]}
  on-o3: {targets: [{model: o3}]}
  on-anthropic: {targets: [{model: claude}]}
  on-gemini: {targets: [{model: gemini}]}
  on-selfhosted: {targets: [{model: local}]}
  look: {strategy: fallback, targets: [{model: local}, {model: claude}]}
  plain: {targets: [{model: local-chat-only}]}
  embed-openai: {targets: [{model: emb-openai}]}
  embed-gemini: {targets: [{model: emb-gemini}]}
  embed-local: {targets: [{model: emb-local}]}
"""
PROVIDERS = ("openai", "anthropic", "gemini", "selfhosted")
STRICT = {"anthropic.first_user": True, "anthropic.alternating_roles": True}


@pytest.fixture(scope="module")
def blob_url():
    with temporary_postgres_database("modelbus_caps_blobs") as url:
        yield url


@pytest.fixture(scope="module")
def stack(tmp_path_factory, kafka_bootstrap, redis_url, blob_url):
    with pytest.MonkeyPatch.context() as env:  # every process the stack starts inherits it
        env.setenv("MODELBUS_BLOB_URL", blob_url)
        running = start_routed_stack(tmp_path_factory.mktemp("caps"), kafka_bootstrap,
                                     redis_url, POLICY, {p: {} for p in PROVIDERS})
    httpx.put(f"{running.simulator_url}/_sim/rules", json=STRICT).raise_for_status()
    yield running
    running.stop()


async def _ask(stack, body: dict, *, watch: str | None = None) -> tuple[dict, list[dict]]:
    """Send ``body``; its response, and the tasks seen on ``watch`` (a tasks topic)."""
    rid = body["request_id"]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap,
                                max_request_size=16 * 1024 * 1024)
    async with Upstream(stack.bootstrap) as up:
        tasks = await up.tail(watch) if watch else None
        responses = await up.tail(RESPONSES)
        await producer.start()
        try:
            await producer.send_and_wait(REQUESTS, json.dumps(body).encode(), key=rid.encode(),
                                         headers=ce_headers(rid))
        finally:
            await producer.stop()
        [answer] = await responses.collect(lambda r: r.key.decode() == rid, 1, timeout=90)
        await responses.stop()
        seen = []
        if tasks is not None:
            seen = await tasks.collect(lambda r: r.key.decode() == rid, 1, timeout=2)
            await tasks.stop()
    return json.loads(answer.value), [json.loads(t.value) for t in seen]


def _rid(name: str) -> str:
    return f"caps-{name}-{uuid.uuid4().hex[:8]}"


def _stops(n: int) -> list[str]:
    return [f"<<stop-{i}>>" for i in range(n)]


SYSTEM_ONLY = [{"role": "system", "content": "Say hello."}]
EMPTY = [{"role": "user", "content": ""}, {"role": "user", "content": "What is Kafka?"}]
ROWS = {  # id: (route, model, request fields)
    "5-stop-openai": ("on-openai", "gpt-4o-mini", {"params": {"stop": _stops(5)}}),
    "5-stop-selfhosted": ("on-selfhosted", "llama-3.1-8b-instruct",
                          {"params": {"stop": _stops(5)}}),
    "6-stop-gemini": ("on-gemini", "gemini-2.5-flash", {"params": {"stop": _stops(6)}}),
    "temperature-reasoning-openai": ("on-o3", "o3-mini",
                                     {"params": {"temperature": 0.3, "top_p": 0.9}}),
    "leading-assistant-anthropic": ("on-anthropic", "claude-sonnet-4-5", {"messages": [
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "What is Kafka?"}]}),
    "two-user-turns-anthropic": ("on-anthropic", "claude-sonnet-4-5", {"messages": [
        {"role": "user", "content": "What is Kafka?"},
        {"role": "user", "content": "In one line."}]}),
    "system-only-anthropic": ("on-anthropic", "claude-sonnet-4-5", {"messages": SYSTEM_ONLY}),
    "system-only-gemini": ("on-gemini", "gemini-2.5-flash", {"messages": SYSTEM_ONLY}),
    "empty-content-anthropic": ("on-anthropic", "claude-sonnet-4-5", {"messages": EMPTY}),
    "empty-content-gemini": ("on-gemini", "gemini-2.5-flash", {"messages": EMPTY}),
}


@pytest.mark.parametrize("row", list(ROWS))
async def test_each_row_of_the_provider_table_is_normalised_and_answered(stack, row):
    route, model, fields = ROWS[row]
    body = {**request_json(_rid(row), task=route), **fields}
    answer, _ = await _ask(stack, body)
    assert answer["status"] == "ok", answer.get("error")
    assert answer["models"] == [model] or answer["models"][0].endswith(model), answer["models"]
    assert answer["output"]


async def test_an_image_request_is_rerouted_past_a_text_only_model(stack):
    content = [{"type": "text", "text": "What is in this image?"},
               {"type": "image", "data": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(),
                "media_type": "image/png"}]
    body = request_json(_rid("vision"), task="look",
                        messages=[{"role": "user", "content": content}])
    answer, [task] = await _ask(stack, body, watch="modelbus.tasks.anthropic.v1")
    assert answer["status"] == "ok", answer.get("error")
    rejected = {r["model"]: r["reason"] for r in task["decision"]["rejected"]}
    assert rejected == {"llama-3.1-8b-instruct": "no vision"}


async def test_a_request_no_model_can_serve_is_refused_before_any_provider_call(stack):
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    body = request_json(_rid("tools"), task="plain", params={"tools": [tool]})
    answer, tasks = await _ask(stack, body, watch="modelbus.tasks.selfhosted.v1")
    assert tasks == []
    assert answer["status"] == "error"
    assert answer["error"]["code"] == "no_eligible_model"
    assert "selfhosted/llama-3.1-8b-instruct: no tools" in answer["error"]["message"]
    body = request_json(_rid("dims"), task="embed-gemini", operation="embed",
                        input=["hello"], params={"dimensions": 4096}, messages=[])
    answer, tasks = await _ask(stack, body, watch="modelbus.tasks.gemini.v1")
    assert tasks == [] and answer["error"]["code"] == "no_eligible_model"
    assert "dimensions: 4096 outside 128-3072" in answer["error"]["message"]


@pytest.mark.parametrize(("route", "size"), [("embed-openai", 256), ("embed-gemini", 768),
                                             ("embed-local", None)])
async def test_embed_requests_are_routed_by_task_and_answered_with_vectors(stack, route, size):
    params = {"dimensions": size} if size else {}
    body = request_json(_rid(route), task=route, operation="embed", messages=[],
                        input=["first text", "second text"], params=params)
    answer, _ = await _ask(stack, body)
    assert answer["status"] == "ok", answer.get("error")
    vectors = answer["embeddings"]
    assert len(vectors) == 2 and vectors[0] != vectors[1]
    if size:
        assert {len(v) for v in vectors} == {size}


async def test_a_five_megabyte_multi_image_request_is_answered_through_the_claim_check(
        stack, blob_url):
    images = [{"type": "image", "media_type": "image/png", "data": base64.b64encode(
        b"\x89PNG\r\n\x1a\n" + bytes((i * 31 + j) % 256 for j in range(1_300_000))).decode()}
        for i in range(3)]
    content = [{"type": "text", "text": "Compare these images."}, *images]
    body = request_json(_rid("5mb"), task="on-openai",
                        messages=[{"role": "user", "content": content}])
    assert len(json.dumps(body)) > 5_000_000
    answer, [task] = await _ask(stack, body, watch="modelbus.tasks.openai.v1")
    assert answer["status"] == "ok", answer.get("error")
    refs = [p for p in task["messages"][0]["content"] if p["type"] == "blob"]
    assert len(refs) == 3
    store = open_blob_store(blob_url)
    try:
        messages = [ChatMessage.model_validate(m) for m in task["messages"]]
        assert (await resolve_messages(store, "acme", messages))[0].image_count() == 3
        assert await store.delete_older_than(datetime.now(UTC) + timedelta(seconds=1)) >= 3
        with pytest.raises(BlobMissing):
            await resolve_messages(store, "acme", messages)
    finally:
        await store.close()
