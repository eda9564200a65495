"""Where the tenant comes from: unsigned requests by default, gateway-signed requests
believed, signed-request mode per tenant, and a signature of one tenant never speaks for
another. Real signatures (modelbus_runtime.signing), no broker."""

from __future__ import annotations

import json

import pytest
from modelbus_router.identity import Identity, Refused, load_tenant_keys
from modelbus_runtime.signing import KeyRing, Signer, TenantKeys
from modelbus_schemas import ErrorCode, RequestEvent
from modelbus_schemas.topics import GATEWAY, REQUESTS, ROUTER

SERVICE_RING = KeyRing.parse("k1:" + "s" * 32)
ACME_RING = KeyRing.parse("a1:" + "acme-secret-0123456789")
GLOBEX_RING = KeyRing.parse("g1:" + "globex-secret-0123456789")
TENANTS = TenantKeys({"acme": ACME_RING, "globex": GLOBEX_RING})


def record(tenant: str, signer: Signer | None = None, rid: str = "r-1", **extra):
    """(request, topic, key, value, headers) as the router's consumer would see them."""
    body = {"request_id": rid, "task": "summarize", "caller": {"tenant": tenant},
            "messages": [{"role": "user", "content": "hi"}], **extra}
    value, key = json.dumps(body).encode(), rid.encode()
    headers = [("ce_id", key), ("ce_type", b"io.modelbus.request.v1")]
    if signer is not None:
        headers.append(signer.header(REQUESTS, key, value, key, b"io.modelbus.request.v1"))
    parts = {"topic": REQUESTS, "key": key, "value": value, "headers": headers}
    return RequestEvent.model_validate_json(value), parts


def establish(request, parts, tenants: TenantKeys = TENANTS):
    return Identity(SERVICE_RING, tenants).establish(request, **parts)


def test_an_unsigned_request_of_a_tenant_outside_signed_mode_is_accepted():
    request, parts = record("initech")
    assert establish(request, parts).via == "unsigned"


def test_a_gateway_signed_request_is_believed_for_any_tenant():
    request, parts = record("acme", Signer(SERVICE_RING, GATEWAY))
    caller = establish(request, parts)
    assert caller.via == "gateway" and caller.gateway and caller.tenant == "acme"


def test_a_tenant_in_signed_mode_is_accepted_with_its_own_signature():
    request, parts = record("acme", TenantKeys.signer(ACME_RING, "acme"))
    assert establish(request, parts).via == "tenant"


def test_an_unsigned_request_naming_a_tenant_in_signed_mode_is_forbidden():
    request, parts = record("acme")
    with pytest.raises(Refused) as refused:
        establish(request, parts)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert "tenant 'acme' sends signed requests only" in str(refused.value)


def test_a_signature_of_one_tenant_on_another_tenants_request_is_forbidden():
    request, parts = record("acme", TenantKeys.signer(GLOBEX_RING, "globex"))
    with pytest.raises(Refused) as refused:
        establish(request, parts)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert "signed for another tenant" in str(refused.value)
    assert "globex" not in str(refused.value), "names nothing of the other tenant"


def test_a_tenant_role_signed_with_another_tenants_key_is_forbidden():
    # a key of globex's, under acme's key id, claiming to be acme: acme's ring refuses it
    stolen_kid = KeyRing.parse("a1:" + "globex-secret-0123456789")
    request, parts = record("acme", TenantKeys.signer(stolen_kid, "acme"))
    with pytest.raises(Refused, match="signature does not match"):
        establish(request, parts)


@pytest.mark.parametrize("role", [GATEWAY, ROUTER])
def test_a_signature_under_a_key_modelbus_does_not_hold_is_forbidden(role):
    attacker = KeyRing.parse("k1:" + "attacker-made-this-up-0123")
    request, parts = record("initech", Signer(attacker, role))
    with pytest.raises(Refused) as refused:
        establish(request, parts)
    assert refused.value.code is ErrorCode.FORBIDDEN


def test_a_service_role_other_than_the_gateway_may_not_sign_a_request():
    request, parts = record("initech", Signer(SERVICE_RING, ROUTER))
    with pytest.raises(Refused, match="not by role 'router'"):
        establish(request, parts)


def test_a_gateway_signature_does_not_survive_a_changed_body():
    _, parts = record("acme", Signer(SERVICE_RING, GATEWAY))
    forged = parts["value"].replace(b'"acme"', b'"globex"')
    parts = {**parts, "value": forged}
    with pytest.raises(Refused, match="does not match"):
        establish(RequestEvent.model_validate_json(forged), parts)


def test_tenant_keys_load_from_a_file_which_wins_over_the_inline_value(tmp_path):
    path = tmp_path / "tenants"
    path.write_text("# signed-request mode\nacme=a1:" + "acme-secret-0123456789\n")
    keys = load_tenant_keys("globex=g1:" + "globex-secret-0123456789", str(path))
    assert keys.requires_signature("acme") and not keys.requires_signature("globex")
    assert load_tenant_keys(None, None).rings == {}
