"""The ingestion path's shortcuts (one trigger scan of a whole body or of all headers, key
redaction while decoding, one walk for text protection, orjson for stored JSON) give exactly
what the full walks give, on the inputs where a shortcut could go wrong."""

from __future__ import annotations

import json

import pytest
from modelbus_audit import sanitize as s
from modelbus_audit.db import stored_json
from modelbus_audit.privacy import PrivacyPolicy, protect
from modelbus_audit.queries import Filters
from modelbus_audit.record import AuditRecord

AWS = "AKIAIOSFODNN7EXAMPLE"
TEXTS = [
    "plain text, nothing here", "PaSsWoRd=abc", "x-API_KEY", "Auth-Token", "a bearer b",
    "ab://u:p@h", "sk-", "ghp_", "xoxb-", "pa\u017f\u017fword: hunter22",  # long s folds to s
    "api_\u212aey=zzzzzzzz",  # the Kelvin sign folds to k
    "caf\u00e9 secret", "caf\u00e9 only", "-----BEGIN", "eyJ", "AIza", "_live_", AWS.lower(),
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_split_trigger_scan_answers_as_the_one_pattern(text):
    assert s.has_trigger(text) == (s.SECRET_TRIGGERS.search(text) is not None)


def _request(body: bytes, headers=()) -> AuditRecord:
    return AuditRecord.from_message("modelbus.requests.v1", 0, 1, b"r1", body, list(headers), 0)


@pytest.mark.parametrize("body", [
    json.dumps({"note": "\\u0041KIA" + AWS[4:]}).encode().replace(b"\\\\", b"\\"),  # escaped
    json.dumps({"note": f"x {AWS} y"}).encode("utf-16"),  # json.loads reads UTF-16 too
    json.dumps({"note": f"x {AWS} y"}, ensure_ascii=False).encode(),
    json.dumps({"n\u00f6te": f"x {AWS} y"}, ensure_ascii=False).encode(),
    json.dumps({AWS: 1}).encode(),  # a key
])
def test_a_secret_in_a_body_is_masked_however_the_body_spells_it(body):
    record = _request(body)
    assert record.payload is not None
    assert AWS not in repr(record.payload)
    assert dict(record.headers)[s.MASKED_HEADER] == "aws_access_key=1"


@pytest.mark.parametrize("body", [
    b'{"a": "plain", "b": [1, 2.5, {"c": "d"}]}', b'{"k": "caf\xc3\xa9"}', b'{"k": "\\u00e9"}',
    json.dumps({"x": f"x {AWS} y"}).encode(),
])
def test_the_body_scan_says_no_secret_only_where_the_walk_changes_nothing(body):
    payload = json.loads(body)
    if not s.json_may_hold_secret(body):
        assert s.mask_tree(payload) == (payload, {})
    assert s.json_may_hold_secret(json.dumps({"x": f"x {AWS} y"}).encode())


@pytest.mark.parametrize("body", [
    b'{"api_key": {"nested": "x"}, "list": [{"token": "t", "max_tokens": 5}, 3]}',
    b'{"a": 1, "a": {"password": "p"}, "Authorization": "b", "x": {"y": {"session_token": 1}}}',
    b'{"input_tokens": 3, "deep": [[{"cookie": [1, 2]}]]}',
])
def test_keys_are_redacted_while_decoding_as_a_walk_after_decoding_does(body):
    assert s.parse_json_object(body) == s.redact(json.loads(body))


@pytest.mark.parametrize("headers", [
    [["ce_id", "request:t/r1"], ["ce_type", "modelbus.request.v1"]],
    [["x-note", f"x {AWS}"], ["x", "y"]],
    [["ce_id", "AKIA"], ["IOSFODNN7EXAMPLE", "z"]],  # a secret split across two strings
])
def test_one_scan_of_all_headers_masks_as_a_walk_of_each(headers):
    assert s.mask_strings(headers) == s.mask_tree(headers)


def test_text_is_protected_under_its_keys_at_any_depth_and_nowhere_else():
    payload = {"content": ["a ana@example.com", {"text": "b@example.com x", "n": 1}],
               "metadata": {"note": "c@example.com", "inner": {"x": "d@example.com",
                                                                "message": "e@example.com"}},
               "message": "f@example.com", "other": "g@example.com", "flag": True}
    body = json.dumps({"request_id": "r1", **payload}).encode()
    record = protect(_request(body), PrivacyPolicy("redact"))
    assert record.payload == {
        "request_id": "r1", "content": ["a [EMAIL]", {"text": "[EMAIL] x", "n": 1}],
        "metadata": {"note": "[EMAIL]", "inner": {"x": "d@example.com", "message": "[EMAIL]"}},
        "message": "[EMAIL]", "other": "g@example.com", "flag": True}


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [0.1, 1e-05, 2e16, "caf\u00e9"], "c": None},
    {"big": 2**70},  # orjson refuses: json.dumps writes it
    {"lone": "\ud800"},  # likewise
])
def test_stored_json_reads_back_as_the_value(value):
    assert json.loads(stored_json(value)) == value


def _at(topic: str, body: bytes) -> AuditRecord:
    return AuditRecord.from_message(topic, 0, 1, None, body, [], 0)  # undecoded: its position


async def test_a_row_key_taken_within_the_batch_is_checked_against_the_store_too(store):
    """Row keys are looked up first choice first; a row whose first choice another row of the
    batch took gets its other choices looked up before one is taken."""
    second = "x:0:1@x:0:1@x:0:1@x:0:1"  # the next key of the third record below: stored
    assert await store.write([_at("x", b"one"), _at(second.removesuffix(":0:1"), b"d")]) == 2
    conflicting, crowded = _at("x", b"two"), _at("x:0:1@x", b"c")
    assert await store.write([conflicting, crowded]) == 2  # takes x:0:1@x:0:1, then ...
    events = await store.search(Filters(), 10)
    keys = {e.identity: e.event_id for e in events if e.identity == "x:0:1@x:0:1"}
    assert keys["x:0:1@x:0:1"] not in ("x:0:1@x:0:1", second)
    assert len({e.event_id for e in events}) == 4 and (await store.verify(full=True)).ok
