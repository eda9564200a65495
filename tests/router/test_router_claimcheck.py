"""Requests larger than a Kafka message, through the real router on the broker.

A valid request above ``max_message_bytes`` used to be dead-lettered as ``oversized`` with no
answer. Now its large content parts travel by claim check (stored in PostgreSQL, the task
carries hashed references that resolve to the same bytes), and a request that cannot be
made to fit gets a ``payload_too_large`` answer naming the limit, with no task published.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from modelbus_runtime.claimcheck import check_out, resolve_messages
from modelbus_runtime.claimcheck_store import open_blob_store
from modelbus_schemas import ChatMessage
from modelbus_testing.pg import temporary_postgres_database

from tests.upstream import REQUESTS, RESPONSES, Upstream, ce_headers, request_json

pytestmark = pytest.mark.e2e

POLICY = """
catalog:
  vision: {provider: openai, model: gpt-4o, context_window: 1000000}
routes:
  look: {targets: [{model: vision}]}
"""
TASKS = "modelbus.tasks.openai.v1"


@pytest.fixture(scope="module")
def blob_url():
    with temporary_postgres_database("modelbus_router_blobs") as url:
        yield url


async def _send_large(bootstrap: str, body: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=32 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(REQUESTS, json.dumps(body).encode(),
                                     key=body["request_id"].encode(),
                                     headers=ce_headers(body["request_id"]))
    finally:
        await producer.stop()


async def _exchange(bootstrap: str, body: dict, expect: str) -> tuple[list, list]:
    """Send ``body``; the records keyed by it on the tasks topic and on the responses topic,
    waiting up to a minute on the ``expect``ed one and a second more on the other."""
    rid = body["request_id"]
    async with Upstream(bootstrap) as up:
        readers = {topic: await up.tail(topic) for topic in (TASKS, RESPONSES)}
        await _send_large(bootstrap, body)
        found = {}
        for topic in sorted(readers, key=lambda t: t != expect):
            found[topic] = await readers[topic].collect(
                lambda r: r.key.decode() == rid, 1, timeout=60 if topic == expect else 1)
            await readers[topic].stop()
    return found[TASKS], found[RESPONSES]


def _image(megabytes: float, seed: int) -> dict:
    raw = bytes((seed * 7 + i) % 256 for i in range(int(megabytes * 1024 * 1024)))
    return {"type": "image", "data": base64.b64encode(raw).decode(), "media_type": "image/png"}


async def test_a_request_above_the_message_limit_is_routed_by_claim_check(router_stack,
                                                                          blob_url):
    stack = router_stack(POLICY, env={"MODELBUS_BLOB_URL": blob_url})
    rid = f"cc-{uuid.uuid4().hex[:8]}"
    content = [{"type": "text", "text": "what differs between these?"},
               *(_image(1.2, i) for i in range(3))]
    body = request_json(rid, task="look", messages=[{"role": "user", "content": content}])
    assert len(json.dumps(body)) > 4 * 1024 * 1024
    [task], answered = await _exchange(stack.bootstrap, body, expect=TASKS)
    assert answered == [], "routed, not answered with an error"
    assert len(task.value) < 1024 * 1024
    event = json.loads(task.value)
    parts = event["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what differs between these?"}
    assert [p["type"] for p in parts[1:]] == ["blob"] * 3
    assert {p["blob"]["kind"] for p in parts[1:]} == {"image"}

    store = open_blob_store(blob_url)
    try:
        messages = [ChatMessage.model_validate(m) for m in event["messages"]]
        resolved = await resolve_messages(store, "acme", messages)
    finally:
        await store.close()
    sent = ChatMessage.model_validate(body["messages"][0])
    assert resolved[0] == sent


async def test_a_request_that_cannot_fit_gets_payload_too_large_naming_the_limit(
        router_stack, blob_url):
    stack = router_stack(POLICY, env={"MODELBUS_BLOB_URL": blob_url})
    rid = f"cc-big-{uuid.uuid4().hex[:8]}"
    # context blocks travel inline: 2 x 700k characters cannot fit a 1 MiB message
    context = [{"title": f"doc {i}", "content": "lorem ipsum " * 60_000} for i in range(2)]
    body = request_json(rid, task="look", context=context)
    dispatched, [answer] = await _exchange(stack.bootstrap, body, expect=RESPONSES)
    assert dispatched == []
    response = json.loads(answer.value)
    assert response["status"] == "error"
    assert response["error"]["code"] == "payload_too_large"
    assert "limit is 1032192 bytes" in response["error"]["message"]
    assert "context blocks" in response["error"]["message"]


async def _store_text(blob_url: str, tenant: str, text: str) -> dict:
    """A text part stored as the gateway stores one; the reference a request carries."""
    store = open_blob_store(blob_url)
    try:
        [message] = await check_out(store, tenant, [ChatMessage(role="user", content=text)],
                                    threshold_bytes=1)
    finally:
        await store.close()
    return message.content[0].model_dump()


async def test_references_from_upstream_are_resolved_and_screened_by_this_route(
        router_stack, blob_url):
    """A reference (as the gateway sends for large content) is read back within the tenant
    before screening: a secret inside it is denied, another tenant's blob does not resolve,
    and a benign one is routed with the content."""
    stack = router_stack(POLICY, env={"MODELBUS_BLOB_URL": blob_url})
    secret = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2H1g0"
    hidden = await _store_text(blob_url, "acme", f"use the key {secret} please")
    no_task, denied = await _exchange(stack.bootstrap, request_json(
        f"cc-secret-{uuid.uuid4().hex[:8]}", task="look",
        messages=[{"role": "user", "content": [hidden]}]), expect=RESPONSES)
    assert no_task == []
    assert denied[0].value and json.loads(denied[0].value)["error"]["code"] == \
        "guardrail_denied"

    foreign = await _store_text(blob_url, "globex", "globex's document")
    no_task, refused = await _exchange(stack.bootstrap, request_json(
        f"cc-foreign-{uuid.uuid4().hex[:8]}", task="look",
        messages=[{"role": "user", "content": [foreign]}]), expect=RESPONSES)
    error = json.loads(refused[0].value)["error"]
    assert no_task == [] and error["code"] == "invalid_request"
    assert "not found for this tenant" in error["message"]

    benign = await _store_text(blob_url, "acme", "a harmless paragraph")
    [task], answered = await _exchange(stack.bootstrap, request_json(
        f"cc-ok-{uuid.uuid4().hex[:8]}", task="look",
        messages=[{"role": "user", "content": [benign]}]), expect=TASKS)
    assert answered == []
    assert json.loads(task.value)["messages"][0]["content"] == [
        {"type": "text", "text": "a harmless paragraph"}]
