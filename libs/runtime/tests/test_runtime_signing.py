"""Signatures of internal events: what verifies, what does not, and key rotation."""

from __future__ import annotations

import pytest
from modelbus_runtime.signing import (
    SIGNATURE_HEADER,
    KeyRing,
    Signer,
    TenantKeys,
    Unauthenticated,
    verify,
)
from modelbus_schemas.identity import scoped_id, split_scoped_id

OLD = "k1:" + "o" * 32
NEW = "k2:" + "n" * 32
TOPIC = "modelbus.results.v1"


def signed(ring: KeyRing, role: str = "adapter-worker", topic: str = TOPIC,
           value: bytes = b'{"x":1}') -> list[tuple[str, bytes]]:
    headers = [("ce_id", b"id-1"), ("ce_type", b"io.modelbus.result.v1")]
    headers.append(Signer(ring, role).header(topic, b"rid", value, b"id-1",
                                             b"io.modelbus.result.v1"))
    return headers


def check(ring: KeyRing, headers, *, value: bytes = b'{"x":1}', topic: str = TOPIC,
          roles=("adapter-worker",)) -> str:
    return verify(ring, topic=topic, key=b"rid", value=value, headers=headers,
                  allowed_roles=roles)


def test_a_signed_event_verifies_as_its_role():
    ring = KeyRing.parse(OLD)
    assert check(ring, signed(ring)) == "adapter-worker"


@pytest.mark.parametrize("change", ["value", "topic", "ce_id", "role", "unsigned", "key"])
def test_any_change_to_what_is_signed_is_refused(change):
    ring = KeyRing.parse(OLD)
    headers = signed(ring)
    value, topic, roles = b'{"x":1}', TOPIC, ("adapter-worker",)
    if change == "value":
        value = b'{"x":2}'
    elif change == "topic":
        topic = "modelbus.tasks.openai.v1"
    elif change == "ce_id":
        headers[0] = ("ce_id", b"id-2")
    elif change == "role":
        roles = ("router",)
    elif change == "unsigned":
        headers = [h for h in headers if h[0] != SIGNATURE_HEADER]
    elif change == "key":
        headers = signed(KeyRing.parse("k1:" + "x" * 32))
    with pytest.raises(Unauthenticated):
        check(KeyRing.parse(OLD), headers, value=value, topic=topic, roles=roles)


def test_a_claimed_role_is_bound_into_the_mac():
    ring = KeyRing.parse(OLD)
    headers = signed(ring, role="router")
    forged = [(k, v.replace(b";router;", b";adapter-worker;")) for k, v in headers]
    with pytest.raises(Unauthenticated, match="does not match"):
        check(ring, forged)


def test_rotation_old_key_accepted_while_configured_then_refused():
    old_only, both, new_only = KeyRing.parse(OLD), KeyRing.parse(f"{NEW},{OLD}"), KeyRing.parse(NEW)
    from_old = signed(old_only)
    assert check(both, from_old) == "adapter-worker"
    assert check(both, signed(both)) == "adapter-worker"  # the new key signs
    assert b";k2;" in signed(both)[-1][1]
    with pytest.raises(Unauthenticated, match="unknown key id"):
        check(new_only, from_old)


def test_two_signature_headers_are_refused():
    ring = KeyRing.parse(OLD)
    headers = signed(ring)
    with pytest.raises(Unauthenticated, match="more than one"):
        check(ring, headers + [headers[-1]])


def test_weak_or_malformed_rings_are_refused():
    for text in ["", "nokey", "k:short", "a;b:" + "x" * 20, f"{OLD},{OLD}"]:
        with pytest.raises(ValueError):
            KeyRing.parse(text)


def test_tenant_signed_requests():
    keys = TenantKeys.parse("acme=t1:" + "a" * 32)
    assert keys.requires_signature("acme") and not keys.requires_signature("other")
    signer = TenantKeys.signer(KeyRing.parse("t1:" + "a" * 32), "acme")
    header = signer.header("modelbus.requests.v1", b"r", b"{}", b"r", b"t")
    headers = [("ce_id", b"r"), ("ce_type", b"t"), header]
    keys.verify("acme", topic="modelbus.requests.v1", key=b"r", value=b"{}", headers=headers)
    with pytest.raises(Unauthenticated):  # another tenant's name on the same signature
        TenantKeys.parse("beta=t1:" + "a" * 32).verify(
            "beta", topic="modelbus.requests.v1", key=b"r", value=b"{}", headers=headers)


def test_scoped_ids_are_unambiguous():
    assert scoped_id("acme:x", "K77") != scoped_id("acme", "x:K77")
    for tenant, rid in [("acme:x", "K77"), ("acme", "x:K77"), ("9", "1:a"), ("", "r")]:
        assert split_scoped_id(scoped_id(tenant, rid)) == (tenant, rid)
    for bad in ["acme:r", "5:acme:r", "4:acme", "x"]:
        with pytest.raises(ValueError):
            split_scoped_id(bad)
