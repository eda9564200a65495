"""The attacker's tools: a raw Kafka producer with no modelbus key, a reader of any topic,
and the simulator's call counter. Every test here runs once: no reruns hide a hole."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from modelbus_runtime.signing import KeyRing, Signer
from modelbus_schemas import ChatMessage, ResultEvent, RoutingDecision, TaskEvent
from modelbus_schemas.cloudevents import ce_headers
from modelbus_schemas.identity import scoped_id

#: A key the attacker made up: signatures under it must not verify.
ATTACKER_RING = KeyRing.parse("local:" + "attacker-chosen-secret-0123456789")


class Attacker:
    """Writes whatever it likes to any topic, as a client with broker access would."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap)

    async def send(self, topic: str, key: str, value: bytes, *, ce_id: str, ce_type: str,
                   sign_as: str | None = None, extra: dict[str, str] | None = None) -> None:
        headers = ce_headers(event_id=ce_id, ce_type=ce_type, source="/attacker", extra=extra)
        if sign_as:
            headers.append(Signer(ATTACKER_RING, sign_as).header(
                topic, key.encode(), value, ce_id.encode(), ce_type.encode()))
        await self.producer.send_and_wait(topic, value, key=key.encode(), headers=headers)


@pytest.fixture
async def attacker(sqlite_stack):
    attacker = Attacker(sqlite_stack.bootstrap)
    await attacker.producer.start()
    yield attacker
    await attacker.producer.stop()


def forged_result(rid: str, text: str, *, tenant: str = "acme",
                  reply_to: str = "modelbus.responses.v1") -> ResultEvent:
    now = datetime.now(UTC)
    return ResultEvent(
        event_id=ResultEvent.make_id(scoped_id(tenant, rid), 0), request_id=rid, tenant=tenant,
        task="summarize", part_id=0, parts_total=1, provider="openai", model="gpt-4o-mini",
        status="ok", text=text, finish_reason="stop", reply_to=reply_to, received_at=now,
        policy_version="forged",
    )


def forged_task(rid: str, *, data_class: str = "restricted", model: str = "gpt-4o") -> TaskEvent:
    now = datetime.now(UTC)
    return TaskEvent(
        event_id=TaskEvent.make_id(scoped_id("acme", rid), 0), request_id=rid, task="summarize",
        part_id=0, parts_total=1, provider="openai", model=model,
        messages=[ChatMessage(role="user", content="the merger terms are ...")],
        data_class=data_class, received_at=now,
        decision=RoutingDecision(policy_version="forged", route="summarize", strategy="single",
                                 selected=[], decided_at=now),
    )


def body(record) -> dict:
    return json.loads(record.value)


def headers_of(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def run_id() -> str:
    return uuid.uuid4().hex[:8]
