"""AuditRecord.from_message: identity, kind and lineage columns from real contract events;
dead-letter records; never raising on garbage; secrets kept out."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from modelbus_audit.record import AuditRecord
from modelbus_schemas import DlqReason
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.topics import REQUESTS, RESULTS


def test_request_event_gives_identity_and_caller_columns(flow):
    record = flow.request.record()
    assert record.kind == "request"
    # identity from the body: (tenant, request id), not the ce_id header
    assert record.event_id == record.identity == f"request:4:acme:{flow.request_id}"
    assert record.flags is None
    assert record.request_id == flow.request_id
    assert (record.tenant, record.team, record.caller_user) == ("acme", "support", "ana")
    assert (record.task, record.data_class) == ("summarize", "confidential")
    assert record.payload["messages"][0]["content"].startswith("Summarise")
    assert record.event_time == flow.decision.decided_at - timedelta(milliseconds=5)
    assert record.chain == f"{REQUESTS}:0"


def test_task_takes_policy_version_from_its_decision(flow):
    record = flow.tasks[1].record()
    assert record.kind == "task"
    assert record.event_id == f"task:4:acme:{flow.request_id}:task:1"  # the body's event_id
    assert (record.provider, record.model, record.part_id) == ("anthropic", "claude-haiku", 1)
    assert record.policy_version == "v7"
    assert record.payload["decision"]["rejected"][0]["reason"] == "region not allowed"


def test_result_and_response_columns(flow):
    ok, failed = (m.record() for m in flow.results)
    assert (ok.kind, ok.status, ok.cost_usd, ok.error_code) == ("result", "ok", 0.00012, None)
    assert (failed.status, failed.error_code) == ("error", "provider_terminal")
    response = flow.response.record()
    assert (response.kind, response.status) == ("response", "partial")
    assert response.policy_version == "v7"
    assert response.event_id == f"response:4:acme:{flow.request_id}:response"
    assert (ok.tenant, response.tenant) == ("acme", "acme")  # from their tenant field


def test_payload_secrets_are_redacted_but_token_counts_kept(flow):
    request = flow.request.record()
    assert request.payload["metadata"]["api_key"] == "[redacted]"
    assert "sk-should-not-be-stored" not in json.dumps(request.to_row(), default=str)
    result = flow.results[0].record()
    assert result.payload["usage"] == {"input_tokens": 12, "output_tokens": 7}


def test_secret_looking_headers_are_dropped(flow, message_factory):
    from modelbus_schemas import RequestEvent, decode

    event = decode(RequestEvent, flow.request.value)
    secrets = {
        "Authorization": "Bearer sk-live-1", "x-api-key": "k-2", "X-Auth-Token": "t-3",
        "client_secret": "s-4", "Cookie": "session=5", "db-password": "p-6",
    }
    message = message_factory(event, REQUESTS, flow.decision.decided_at,
                              extra={**secrets, "traceparent": "00-abc-def-01"})
    record = message.record()
    names = [name for name, _ in record.headers]
    assert "traceparent" in names and "ce_id" in names
    assert not set(secrets) & set(names)
    text = json.dumps(record.to_row(), default=str)
    assert not any(value in text for value in secrets.values())


def test_event_id_falls_back_to_log_position_and_request_id_to_payload():
    body = json.dumps({"request_id": "from-body", "status": "ok"}).encode()
    record = AuditRecord.from_message(RESULTS, 3, 42, None, body, [], 1_700_000_000_000)
    assert record.event_id == f"{RESULTS}:3:42"
    assert record.request_id == "from-body"
    assert record.kind == "result"  # from the topic name when there is no ce_type
    assert record.flags == "undecoded"  # not a ResultEvent: never a genuine lineage step


def test_unknown_topic_and_type_is_kind_unknown():
    record = AuditRecord.from_message("other.topic", 0, 1, b"k", b"{}", [], 0)
    assert record.kind == "unknown" and record.request_id == "k"


def test_dead_letter_uses_dlq_id_not_original_ce_id(flow, dead_letter_factory):
    original = flow.tasks[0]
    body = b"\x00\x01not json at all \xff\xfe" + b"A" * 1000
    message, info = dead_letter_factory(original, body=body, reason=DlqReason.SCHEMA)
    record = message.record()
    assert record.kind == "dead_letter"
    assert record.event_id == info.event_id() == (
        f"dlq:{original.topic}:{original.partition}:{original.offset}"
    )
    assert record.ce_id == f"4:acme:{flow.request_id}:task:0"  # the original's id, kept for lineage
    assert record.request_id == flow.request_id
    assert (record.dlq_reason, record.dlq_source_topic) == ("schema", original.topic)
    assert record.dlq_error == "DecodeError: body is not valid JSON"
    assert record.payload is None and record.body_size == len(body)
    assert record.body_excerpt.startswith("\\x00\\x01not json at all \\xff\\xfe")
    assert "\x00" not in record.body_excerpt and len(record.body_excerpt) < 400
    assert record.event_time == info.last_failure_at


def test_dead_letter_with_json_body_and_extra_header_keeps_lineage(flow, dead_letter_factory):
    message, info = dead_letter_factory(
        flow.tasks[1], reason=DlqReason.RETRIES_EXHAUSTED,
        extra_headers=[("modelbus_dlq_truncated_from", b"12345")],
    )
    record = message.record()
    assert record.event_id == info.event_id()
    assert record.dlq_reason == "retries_exhausted"
    assert (record.provider, record.policy_version, record.part_id) == ("anthropic", "v7", 1)
    assert record.payload is not None and record.body_excerpt is None


def test_dead_letter_with_partial_headers_still_gets_its_dlq_id():
    headers = [("modelbus_dlq_source_topic", b"modelbus.requests.v1"),
               ("modelbus_dlq_source_partition", b"2"), ("modelbus_dlq_source_offset", b"9"),
               ("modelbus_dlq_reason", b"oversized"), ("ce_id", b"orig")]
    record = AuditRecord.from_message("modelbus.requests.v1.dlq", 2, 5, b"r", b"x", headers, 1)
    assert record.event_id == "dlq:modelbus.requests.v1:2:9"
    assert record.dlq_reason == "oversized"


GARBAGE_VALUES = {
    "not_json": b"this is { not json",
    "empty": b"",
    "none": None,
    "one_megabyte": os.urandom(1_000_000),
    "json_array": b"[1, 2, 3]",
    "nan": b'{"cost_usd": NaN}',
    "huge_number": b'{"cost_usd": 1e999}',
    "deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "bad_utf8_json": b'{"request_id": "\xff\xfe"}',
    "nul_in_json": b'{"request_id": "a\\u0000b", "task": {"x": 1}, "part_id": true}',
    "str_value": "a str, not bytes",
}
GARBAGE_HEADERS = {
    "none": None,
    "none_value": [("ce_id", None)],
    "bytes_name": [(b"ce_type", "io.modelbus.result.v1")],
    "wrong_arity": [("only-one",), ("a", b"b", b"c")],
    "not_iterable": 5,
    "none_pair": [(None, None)],
    "bad_time": [("ce_time", b"yesterday"), ("ce_id", b"\xff" * 5000)],
    "dlq_garbage": [("modelbus_dlq_source_offset", b"-1"), ("modelbus_dlq_reason", b"x" * 999)],
}


@pytest.mark.parametrize("value", GARBAGE_VALUES.values(), ids=GARBAGE_VALUES.keys())
@pytest.mark.parametrize("headers", GARBAGE_HEADERS.values(), ids=GARBAGE_HEADERS.keys())
def test_from_message_never_raises_on_garbage(value, headers):
    record = AuditRecord.from_message("modelbus.results.v1.dlq", 0, 7, b"\xff\x00key", value,
                                      headers, 1_700_000_000_000)
    assert isinstance(record, AuditRecord)
    assert record.event_id and len(record.event_id) <= 300
    assert record.body_excerpt is None or len(record.body_excerpt) < 1200
    assert record.payload is None or isinstance(record.payload, dict)
    text = json.dumps(record.to_row(), default=str, allow_nan=False)  # storable as JSON
    assert "\x00" not in "".join(str(v) for v in record.to_row().values() if isinstance(v, str))
    assert len(text) < 20_000  # never the megabyte body


@pytest.mark.parametrize(
    "args",
    [("bad", "p", "o", 1, b"x", [], "ts"), (None, None, None, None, None, None, None),
     (b"modelbus.requests.v1", -1, 2**70, b"k", b"{}", [], -5)],
)
def test_from_message_never_raises_on_bad_coordinates(args):
    record = AuditRecord.from_message(*args)
    assert isinstance(record, AuditRecord) and record.event_id


def test_ce_time_drives_event_time_and_is_utc():
    headers = ce.ce_headers(event_id="e1", ce_type=ce.TYPE_RESULT, source="t")
    headers = [(k, b"2025-03-01T14:00:00+02:00" if k == "ce_time" else v) for k, v in headers]
    record = AuditRecord.from_message(RESULTS, 0, 1, b"r", b"{}", headers, 0)
    assert record.event_time.isoformat() == "2025-03-01T12:00:00+00:00"
