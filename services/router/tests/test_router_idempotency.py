"""Idempotency claims are per (tenant, request id) and per (tenant, idempotency key),
encoded without ambiguity, and a duplicate is told in the caller's own words. Real Redis."""

from __future__ import annotations

import uuid

from modelbus_router.idempotency import Idempotency, claim_keys
from modelbus_schemas import RequestEvent


def request(tenant: str, rid: str, text: str = "hello", **kw) -> RequestEvent:
    return RequestEvent(request_id=rid, task="summarize", caller={"tenant": tenant},
                        messages=[{"role": "user", "content": text}], **kw)


def run() -> str:
    return uuid.uuid4().hex[:8]


def test_a_colon_in_a_tenant_name_cannot_forge_another_tenants_key():
    a = request("acme:x", "r-1", idempotency_key="K77")
    b = request("acme", "r-1", idempotency_key="x:K77")
    assert set(claim_keys(a)).isdisjoint(claim_keys(b))
    assert claim_keys(a)[1].endswith("6:acme:x:K77")
    assert claim_keys(b)[1].endswith("4:acme:x:K77")


async def test_tenants_never_share_a_claim(redis_client):
    idem, n = Idempotency(redis_client), run()
    first = request("acme:x", f"a-{n}", idempotency_key=f"K77-{n}")
    second = request("acme", f"b-{n}", idempotency_key=f"x:K77-{n}")
    assert (await idem.claim(first)).state == "new"
    assert (await idem.claim(second)).state == "new"
    same_id = request("globex", f"a-{n}", text="globex's own question")
    assert (await idem.claim(same_id)).state == "new", "request ids are per tenant too"


async def test_a_request_id_reused_with_other_content_is_a_duplicate_in_own_words(
        redis_client):
    idem, n = Idempotency(redis_client), run()
    original = request("acme", f"r-{n}", "original question")
    assert (await idem.claim(original)).state == "new"
    await idem.complete(original)
    other = request("acme", f"r-{n}", "a different question")
    claim = await idem.claim(other)
    assert claim.state == "duplicate" and claim.conflict == "request_id"
    assert claim.message(other) == (
        f"duplicate request: request id 'r-{n}' was already used by this tenant for a "
        "request with other content")


async def test_an_idempotency_key_reused_by_another_request_names_only_the_key(redis_client):
    idem, n = Idempotency(redis_client), run()
    original = request("acme", f"first-{n}", idempotency_key=f"k-{n}")
    assert (await idem.claim(original)).state == "new"
    retry = request("acme", f"second-{n}", idempotency_key=f"k-{n}")
    claim = await idem.claim(retry)
    assert claim.state == "duplicate" and claim.conflict == "idempotency_key"
    message = claim.message(retry)
    assert f"idempotency key 'k-{n}'" in message and f"first-{n}" not in message


async def test_the_same_request_again_resumes_then_is_done(redis_client):
    idem, n = Idempotency(redis_client), run()
    original = request("acme", f"r-{n}", idempotency_key=f"k-{n}")
    assert (await idem.claim(original)).state == "new"
    assert (await idem.claim(original)).state == "resume", "redelivered before publishing"
    await idem.complete(original)
    resent = original.model_copy(update={"created_at": "2026-01-01T00:00:00Z"})
    assert (await idem.claim(resent)).state == "done", "a re-send is the same request"


async def test_a_released_claim_lets_the_caller_try_again(redis_client):
    idem, n = Idempotency(redis_client), run()
    refused = request("acme", f"r-{n}", "too expensive", idempotency_key=f"k-{n}")
    assert (await idem.claim(refused)).state == "new"
    await idem.release(refused)
    changed = request("acme", f"r-{n}", "cheaper now", idempotency_key=f"k-{n}")
    assert (await idem.claim(changed)).state == "new"
    await idem.release(refused)  # releasing what is no longer held changes nothing
    assert (await idem.claim(changed)).state == "resume"
