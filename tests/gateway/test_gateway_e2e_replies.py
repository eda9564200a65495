"""Forged responses on the gateway's reply topic, through the whole stack: an attacker with
broker access reads a call's request event off the requests topic and, while the model is
still answering, writes responses for it to the gateway's reply topic — unsigned, and
signed as the aggregator with a key of its own. The caller gets the model's real answer,
never the forger's text, and the gateway counts what it dropped. The request event the
gateway published is itself signed as the gateway."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from datetime import UTC, datetime

import openai
import pytest
from aiokafka import AIOKafkaProducer
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import KeyRing, Signer, verify
from modelbus_schemas import ResponseEvent, encode
from modelbus_schemas.cloudevents import ce_headers
from modelbus_schemas.identity import scoped_id

from tests.upstream import REQUESTS, TailReader

pytestmark = pytest.mark.e2e

ATTACKER_RING = KeyRing.parse("local:" + "attacker-chosen-secret-0123456789")


def _refused(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelbus_gateway_replies_refused_total{")
               and 'reason="unauthenticated"' in line)


async def test_forged_responses_on_the_reply_topic_never_reach_the_caller(gateway_stack):
    gw = gateway_stack
    marker = f"forgery-{uuid.uuid4().hex[:8]}"
    gw.script_model("gpt-slow", {"latency_ms": 2500})  # time for the forger to strike
    before = _refused(gw.url)
    requests = TailReader(gw.stack.bootstrap, REQUESTS)
    await requests.start()
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=gw.keys["support"],
                                max_retries=0, timeout=60)
    call = asyncio.create_task(client.chat.completions.create(
        model="slow", messages=[{"role": "user", "content": f"genuine question {marker}"}]))
    try:
        [seen] = await requests.collect(lambda r: marker.encode() in r.value, 1, timeout=20)
    finally:
        await requests.stop()
    request = json.loads(seen.value)
    rid, reply_to, tenant = request["request_id"], request["reply_to"], request["caller"]["tenant"]
    assert tenant == gw.tenant and reply_to.startswith("modelbus.responses.gateway-")
    # the gateway's own request event is signed as the gateway (EventProducer)
    assert verify(RuntimeSettings().signing_ring(), topic=REQUESTS, key=seen.key,
                  value=seen.value, headers=seen.headers, allowed_roles=["gateway"]) == "gateway"
    forged = ResponseEvent(event_id=ResponseEvent.make_id(scoped_id(tenant, rid)),
                           request_id=rid, tenant=tenant, status="ok",
                           output=f"FORGED ANSWER {marker}", models=["openai/gpt-slow"],
                           created_at=datetime.now(UTC))
    value, key = encode(forged), rid.encode()
    producer = AIOKafkaProducer(bootstrap_servers=gw.stack.bootstrap)
    await producer.start()
    try:
        headers = ce_headers(event_id=forged.event_id, ce_type=ResponseEvent.CE_TYPE,
                             source="/attacker")
        await producer.send_and_wait(reply_to, value, key=key, headers=headers)
        signed = [*headers, Signer(ATTACKER_RING, "aggregator").header(
            reply_to, key, value, forged.event_id.encode(), ResponseEvent.CE_TYPE.encode())]
        await producer.send_and_wait(reply_to, value, key=key, headers=signed)
    finally:
        await producer.stop()
    completion = await call
    answer = completion.choices[0].message.content
    assert "FORGED" not in answer and answer.startswith("[gpt-slow] genuine question"), answer
    assert completion.id == "chatcmpl-" + rid.removeprefix("gw-")
    assert _refused(gw.url) - before == 2
