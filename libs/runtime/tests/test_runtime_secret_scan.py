"""Secret-like strings are found and masked wherever they sit in a text."""

from __future__ import annotations

import pytest
from modelbus_runtime.logging import scrub
from modelbus_runtime.secret_scan import find_secrets, mask_secrets

AWS = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
JWT = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
URL = "postgresql://app:hunter2pass@db.internal:5432/orders"


@pytest.mark.parametrize(("secret", "kind"), [
    (AWS, "aws_access_key"), (PEM, "private_key"), (JWT, "jwt"),
    (URL, "connection_string_password"), ("Bearer abcdefghijklmnop1234", "bearer_token"),
])
def test_each_kind_is_masked_with_its_name(secret, kind):
    masked, found = mask_secrets(f"before {secret} after")
    assert found == {kind: 1}
    assert masked == f"before [secret:{kind}] after"


def test_a_private_key_without_its_end_line_is_masked_to_the_end():
    masked, _ = mask_secrets("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B")
    assert "MIIE" not in masked


def test_urls_without_passwords_and_prose_are_left_alone():
    text = "see https://example.com/a?b=c and mail ana@example.com; tokens are free"
    assert mask_secrets(text) == (text, {})
    assert not find_secrets([text])


def test_logs_never_carry_them():
    line = scrub(f"connect {URL} with {AWS} and {JWT}")
    assert "hunter2pass" not in line and AWS not in line and JWT not in line
