"""Dead letters keep the original bytes, except secret-like strings, which are masked."""

from __future__ import annotations

from modelbus_runtime.dlq import DeadLetterPublisher
from modelbus_runtime.errors import PoisonMessage
from modelbus_runtime.inbound import Inbound
from modelbus_schemas import DlqReason

AWS = "AKIAIOSFODNN7EXAMPLE"


class Captured:
    """Stands in for the producer: keeps what would have been published."""

    def __init__(self) -> None:
        self.records = []

    async def publish_raw(self, topic, key, value, headers):
        self.records.append((topic, key, value, headers))


async def _dead_letter(value: bytes, headers=()) -> tuple:
    producer = Captured()
    message = Inbound(topic="modelbus.requests.v1", partition=0, offset=7, key=b"r1",
                      value=value, headers=list(headers))
    await DeadLetterPublisher(producer, "router", 1 << 20).send(
        message, PoisonMessage("bad"), DlqReason.SCHEMA)
    [record] = producer.records
    return record


async def test_secrets_in_value_and_headers_are_masked_and_named():
    body = f'{{"request_id": 5, "note": "{AWS}"}}'.encode() + b"\xff"
    topic, key, value, headers = await _dead_letter(body, [("x-note", AWS.encode())])
    assert topic == "modelbus.requests.v1.dlq" and key == b"r1"
    assert AWS.encode() not in value and b"[secret:aws_access_key]" in value
    assert value.endswith(b"\xff"), "bytes that are not UTF-8 are kept"
    named = dict(headers)
    assert AWS.encode() not in named["x-note"]
    assert named["modelbus_dlq_secrets_masked"] == b"aws_access_key=2"


async def test_a_record_without_secrets_is_kept_byte_for_byte():
    body = b'{"request_id": 5}\x00\xfe'
    _, _, value, headers = await _dead_letter(body, [("ce_id", b"r1")])
    assert value == body
    assert "modelbus_dlq_secrets_masked" not in dict(headers)
