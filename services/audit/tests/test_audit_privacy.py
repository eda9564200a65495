"""Redaction before storage on SQLite and PostgreSQL: personal data never reaches the store in
redact mode, hashes mode keeps digests only, full mode keeps text; metadata stays searchable."""

from __future__ import annotations

import hashlib
import json

import pytest
from modelbus_audit.privacy import PrivacyPolicy, TextMode, protect, strip_text
from modelbus_audit.record import AuditRecord
from modelbus_schemas import Caller, ChatMessage, RequestEvent, ResponseEvent
from modelbus_schemas.topics import REQUESTS, RESPONSES

PROMPT = ("Refund ana.maria@example.com, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 "
          "0130 00, SSN 123-45-6789, phone +44 20 7946 0958. Kafka is a log.")
SECRETS = ("ana.maria@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
           "123-45-6789", "+44 20 7946 0958")


def _pair(message_factory, request_id: str):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    request = RequestEvent(
        request_id=request_id, task="summarize", caller=Caller(tenant="acme", team="billing",
                                                             user="u7"),
        messages=[ChatMessage(role="user", content=PROMPT)], data_class="confidential",
        metadata={"ticket": "from bob@example.org"},
    )
    response = ResponseEvent(
        event_id=ResponseEvent.make_id(request_id), request_id=request_id, status="ok",
        output="Mail sent to ana.maria@example.com.", created_at=now,
    )
    return [message_factory(request, REQUESTS, now).record(),
            message_factory(response, RESPONSES, now).record()]


async def _stored_text(store, request_id: str) -> str:
    events = await store.lineage(request_id)
    return json.dumps([e.payload for e in events])


async def test_redact_mode_stores_no_personal_data(store, message_factory):
    policy = PrivacyPolicy(TextMode.REDACT)
    records = [protect(r, policy) for r in _pair(message_factory, "pii-redact")]
    assert await store.write(records) == 2
    stored = await _stored_text(store, "pii-redact")
    for secret in SECRETS + ("bob@example.org",):
        assert secret not in stored
    for placeholder in ("[EMAIL]", "[CARD]", "[IBAN]", "[NATIONAL_ID]", "[PHONE]"):
        assert placeholder in stored
    assert "Kafka is a log." in stored
    request = (await store.lineage("pii-redact"))[0]
    assert (request.tenant, request.team, request.data_class) == ("acme", "billing",
                                                                  "confidential")
    assert (await store.verify()).ok


async def test_hashes_mode_keeps_only_digests(store, message_factory):
    records = [protect(r, PrivacyPolicy("hashes")) for r in _pair(message_factory, "pii-hash")]
    await store.write(records)
    events = await store.lineage("pii-hash")
    content = events[0].payload["messages"][0]["content"]
    assert content == "sha256:" + hashlib.sha256(PROMPT.encode()).hexdigest()
    assert "Kafka" not in await _stored_text(store, "pii-hash")
    assert events[1].payload["output"].startswith("sha256:")


async def test_full_mode_keeps_text_and_kinds_can_be_limited(store, message_factory):
    full = [protect(r, PrivacyPolicy("full")) for r in _pair(message_factory, "pii-full")]
    await store.write(full)
    assert SECRETS[0] in await _stored_text(store, "pii-full")
    only_email = PrivacyPolicy("redact", kinds=("email",))
    record = protect(_pair(message_factory, "pii-some")[0], only_email)
    text = record.payload["messages"][0]["content"]
    assert "[EMAIL]" in text and "4111 1111 1111 1111" in text
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PrivacyPolicy("redact", kinds=("shoe_size",))


def test_non_json_bodies_and_dlq_errors_are_redacted_or_dropped():
    record = AuditRecord(
        event_id="x", kind="dead_letter", topic="t.dlq", kafka_partition=0, kafka_offset=1,
        event_time=__import__("datetime").datetime.now(),
        body_excerpt="garbage ana@example.com", dlq_error="input_value='ana@example.com'",
    )
    redacted = protect(record, PrivacyPolicy("redact"))
    assert redacted.body_excerpt == "garbage [EMAIL]"
    assert redacted.dlq_error == "input_value='[EMAIL]'"
    hashed = protect(record, PrivacyPolicy("hashes"))
    assert hashed.body_excerpt is None and "[EMAIL]" in hashed.dlq_error


def test_ops_view_strips_prompt_and_response_text_at_any_depth():
    payload = {"messages": [{"role": "user", "content": "secret"}], "text": "answer",
               "origin": {"messages": [{"role": "user", "content": "secret"}]},
               "usage": {"input_tokens": 3}, "attempts": [{"number": 1}]}
    view = strip_text(payload)
    assert "secret" not in json.dumps(view) and "answer" not in json.dumps(view)
    assert view["usage"] == {"input_tokens": 3} and view["attempts"] == [{"number": 1}]
    assert view["messages"] == [{"role": "user"}]
