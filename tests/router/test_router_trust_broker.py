"""The router's trust checks through a real broker: a reply topic outside the policy is
answered on the default topic and never written to, a granted topic that does not exist is
never auto-created, and a tenant in signed-request mode is served only when it signs.
Requests are produced with plain aiokafka (tests.upstream)."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from modelbus_runtime.signing import KeyRing, TenantKeys
from modelbus_schemas.topics import REQUESTS, tasks_topic

from tests.upstream import RESPONSES, Upstream, ce_headers, request_json

pytestmark = pytest.mark.e2e

POLICY = """
catalog:
  mini: {provider: openai, model: gpt-4o-mini}
routes:
  summarize: {targets: [{model: mini}]}
reply_topics:
  "*": ["replies.{tenant}.*"]
"""
SIGNED_TENANT_RING = "t1:" + "signed-tenant-secret-0123456789"


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            await consumer.topics()
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()


async def answer(up: Upstream, responses, rid: str) -> dict:
    [record] = await responses.collect(lambda r: r.key.decode() == rid, 1, timeout=30)
    return json.loads(record.value)


async def test_a_reply_to_the_openai_tasks_topic_is_refused_and_nothing_is_written_there(
        router_stack):
    stack = router_stack(POLICY)
    target, rid = tasks_topic("openai"), f"internal-{uuid.uuid4().hex[:8]}"
    async with Upstream(stack.bootstrap) as up:
        responses = await up.tail(RESPONSES)
        tasks = await up.tail(target)
        before = await end_offsets(stack.bootstrap, target)
        await up.send(request_json(rid, reply_to=target))
        body = await answer(up, responses, rid)
        leaked = await tasks.collect(lambda r: r.key.decode() == rid, 1, timeout=2)
        after = await end_offsets(stack.bootstrap, target)
        await responses.stop()
        await tasks.stop()
    assert body["status"] == "error" and body["error"]["code"] == "forbidden", body
    assert repr(target) in body["error"]["message"]
    assert body["tenant"] == "acme"
    assert leaked == [] and after == before, "no record was added to the tasks topic"


async def test_a_granted_reply_topic_that_does_not_exist_is_never_auto_created(router_stack):
    stack = router_stack(POLICY)
    run = uuid.uuid4().hex[:8]
    target, rid = f"replies.acme.missing-{run}", f"missing-{run}"
    async with Upstream(stack.bootstrap) as up:
        responses = await up.tail(RESPONSES)
        await up.send(request_json(rid, reply_to=target))
        body = await answer(up, responses, rid)
        await responses.stop()
    assert body["error"]["code"] == "invalid_request", body
    assert f"{target!r} does not exist" in body["error"]["message"]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        assert target not in set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_tenant_in_signed_mode_is_routed_only_when_it_signs(router_stack):
    run = uuid.uuid4().hex[:8]
    tenant = f"signed-{run}"
    stack = router_stack(POLICY, env={"MODELBUS_TENANT_KEYS": f"{tenant}={SIGNED_TENANT_RING}"})
    unsigned, signed = f"unsigned-{run}", f"signed-{run}"
    signer = TenantKeys.signer(KeyRing.parse(SIGNED_TENANT_RING), tenant)
    async with Upstream(stack.bootstrap) as up:
        responses = await up.tail(RESPONSES)
        tasks = await up.tail(tasks_topic("openai"))
        await up.send(request_json(unsigned, caller={"tenant": tenant}))
        body = await answer(up, responses, unsigned)
        value = json.dumps(request_json(signed, caller={"tenant": tenant})).encode()
        headers = ce_headers(signed)
        headers.append(signer.header(REQUESTS, signed.encode(), value, signed.encode(),
                                     b"io.modelbus.request.v1"))
        await up.producer.send_and_wait(REQUESTS, value, key=signed.encode(), headers=headers)
        dispatched = await tasks.collect(lambda r: r.key.decode() in (unsigned, signed), 2,
                                         timeout=5)
        await responses.stop()
        await tasks.stop()
    assert body["error"]["code"] == "forbidden", body
    assert "sends signed requests only" in body["error"]["message"]
    assert [r.key.decode() for r in dispatched] == [signed], "only the signed one is routed"
