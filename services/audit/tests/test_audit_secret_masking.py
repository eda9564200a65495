"""No secret-like string is ever written to the audit store, whatever the record."""

from __future__ import annotations

import json

from modelbus_audit.record import AuditRecord
from modelbus_audit.sanitize import MASKED_HEADER, mask_tree

AWS = "AKIAIOSFODNN7EXAMPLE"
JWT = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")


def test_mask_tree_masks_keys_values_and_nested_lists():
    masked, found = mask_tree({"a": [AWS, {"b": JWT}], JWT: 1, "n": 3})
    assert AWS not in repr(masked) and JWT not in repr(masked)
    assert masked["n"] == 3
    assert found == {"aws_access_key": 1, "jwt": 2}


def _record(value: bytes, headers=()) -> AuditRecord:
    return AuditRecord.from_message(topic="modelbus.requests.v1", partition=0, offset=1,
                                    key=b"r1", value=value, headers=list(headers),
                                    timestamp_ms=0)


def test_payloads_excerpts_and_headers_are_masked_with_a_finding():
    good = _record(json.dumps({"request_id": "r1", "metadata": {"k": AWS}}).encode(),
                   [("x-trace-note", JWT.encode())])
    bad = _record(b"not json " + AWS.encode())
    for record in (good, bad):
        text = repr(record.to_row())
        assert AWS not in text and JWT not in text
    assert dict(good.headers)[MASKED_HEADER] == "aws_access_key=1,jwt=1"
    assert dict(bad.headers)[MASKED_HEADER] == "aws_access_key=1"
    assert "[secret:aws_access_key]" in bad.body_excerpt


EXAMPLES = {
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "anthropic_api_key": "sk-ant-" + "a1" * 15,
    "openai_api_key": "sk-proj-" + "b2" * 15,
    "github_token": "ghp_" + "c" * 36,
    "slack_token": "xoxb-1234567890-abc",
    "google_api_key": "AIza" + "d" * 35,
    "stripe_key": "rk_live_" + "e" * 20,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
    "connection_string_password": "ab://u:p@h",
    "bearer_token": "BEARER abcdefghijklmnop1234",
    "credential_assignment": "Api-Key: 'hunter2hunter2'",
}


def test_the_quick_prefilter_lets_every_kind_of_secret_through_to_the_scan():
    from modelbus_audit.sanitize import MIN_SECRET_CHARS, TRIGGERED_KINDS
    from modelbus_runtime.secret_scan import KINDS

    assert TRIGGERED_KINDS == set(KINDS) == set(EXAMPLES)  # a new kind needs a trigger
    for kind, secret in EXAMPLES.items():
        masked, found = mask_tree({"k": f"x {secret} y"})
        assert found == {kind: 1} and secret not in json.dumps(masked), kind
    assert min(len(secret) for secret in EXAMPLES.values()) == MIN_SECRET_CHARS
