"""Only a genuine response of the caller's own tenant completes a call: the reply filter
(:func:`modelbus_gateway.replies.accept`) drops unsigned, forged and wrong-role records
and counts them; calls are matched by (tenant, request id), so another tenant's response
to the same request id never completes a call; stored idempotent responses are per tenant
(real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from modelbus_gateway.correlation import PendingReplies
from modelbus_gateway.gateway import Gateway
from modelbus_gateway.idempotency import IdempotencyStore
from modelbus_gateway.metrics import REPLIES_REFUSED
from modelbus_gateway.replies import accept
from modelbus_runtime.signing import KeyRing, Signer
from modelbus_schemas import Caller, ChatMessage, RequestEvent, ResponseEvent, encode
from modelbus_schemas.cloudevents import ce_headers
from modelbus_schemas.identity import scoped_id

RING = KeyRing.parse("k1:" + "service-ring-secret-0123456789")
OTHER_RING = KeyRing.parse("k1:" + "attacker-ring-secret-012345678")
TOPIC = "modelbus.responses.gateway-test.v1"


def _response(rid: str, tenant: str, output: str) -> ResponseEvent:
    return ResponseEvent(event_id=ResponseEvent.make_id(scoped_id(tenant, rid)), request_id=rid,
                         tenant=tenant, status="ok", output=output, created_at=datetime.now(UTC))


def _record(response: ResponseEvent, *, sign_as: str | None, ring: KeyRing = RING,
            offset: int = 0) -> ConsumerRecord:
    value, key = encode(response), response.request_id.encode()
    headers = ce_headers(event_id=response.event_id, ce_type=ResponseEvent.CE_TYPE,
                         source="/test")
    if sign_as is not None:
        headers.append(Signer(ring, sign_as).header(
            TOPIC, key, value, response.event_id.encode(), ResponseEvent.CE_TYPE.encode()))
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key, value, None, len(key), len(value),
                          tuple(headers))


def _refused(reason: str) -> float:
    return REPLIES_REFUSED.labels(reason=reason)._value.get()


def test_gateway_accepts_only_responses_signed_by_a_role_allowed_to_answer(caplog):
    response = _response("gw-1", "t-one", "genuine")
    assert accept(RING, TOPIC, _record(response, sign_as="aggregator")) == response
    assert accept(RING, TOPIC, _record(response, sign_as="router")) == response
    before = _refused("unauthenticated")
    forged = [_record(response, sign_as=None), _record(response, sign_as="gateway"),
              _record(response, sign_as="adapter-worker"),
              _record(response, sign_as="aggregator", ring=OTHER_RING)]
    assert [accept(RING, TOPIC, r) for r in forged] == [None] * 4
    assert _refused("unauthenticated") - before == 4
    assert caplog.text.count("not authentic") == 4
    tampered = _record(response, sign_as="aggregator")
    tampered.value = tampered.value.replace(b"genuine", b"forged!")
    assert accept(RING, TOPIC, tampered) is None


class Loop:
    """Records published requests; the test answers them as the reply topic would."""

    def __init__(self) -> None:
        self.sent: list[RequestEvent] = []

    async def publish(self, request: RequestEvent) -> None:
        self.sent.append(request)


def _request(rid: str, tenant: str) -> RequestEvent:
    return RequestEvent(request_id=rid, task="summarize",
                        messages=[ChatMessage(role="user", content=f"from {tenant}")],
                        caller=Caller(tenant=tenant), latency_budget_ms=2000)


async def test_gateway_another_tenants_response_to_the_same_request_id_never_completes_a_call():
    loop = Loop()
    gateway = Gateway(loop.publish, PendingReplies(10), None, grace_ms=50)
    rid = f"gw-{uuid.uuid4().hex}"
    one = asyncio.create_task(gateway.call(_request(rid, "t-one")))
    two = asyncio.create_task(gateway.call(_request(rid, "t-two")))
    await asyncio.sleep(0.02)
    assert len(loop.sent) == 2 and len(gateway.pending) == 2
    gateway.on_response(_response(rid, "t-two", "two's answer"))
    await asyncio.sleep(0.02)
    assert not one.done(), "t-two's response completed t-one's call"
    assert (await two).output == "two's answer"
    gateway.on_response(_response(rid, "someone-else", "not for t-one"))
    await asyncio.sleep(0.02)
    assert not one.done()
    gateway.on_response(_response(rid, "t-one", "one's answer"))
    assert (await one).output == "one's answer"
    assert len(gateway.pending) == 0


async def test_gateway_stored_idempotent_responses_are_per_tenant(redis_client):
    store = IdempotencyStore(redis_client, ttl_s=60)
    rid = f"gw-{uuid.uuid4().hex}"
    await store.store(_response(rid, "t-one", "one's answer"))
    assert (await store.stored("t-one", rid)).output == "one's answer"
    assert await store.stored("t-two", rid) is None
    await redis_client.delete(f"modelbus:gw:resp:{scoped_id('t-one', rid)}")


@pytest.mark.parametrize(("first", "second"), [(("acme:x", "K77"), ("acme", "x:K77"))])
async def test_gateway_idempotency_keys_do_not_collide_across_tenants(redis_client, first, second):
    store = IdempotencyStore(redis_client, ttl_s=60)
    run = uuid.uuid4().hex[:6]
    a = await store.claim(first[0], first[1] + run, "call-a", "gw-a")
    b = await store.claim(second[0], second[1] + run, "call-b", "gw-b")
    assert (a.new, b.new) == (True, True)
    await store.release(first[0], first[1] + run, "call-a", "gw-a")
    await store.release(second[0], second[1] + run, "call-b", "gw-b")
