"""Tenant-scoped identity: two tenants that never heard of each other may pick the same
request id or idempotency key, and neither sees anything of the other's."""

from __future__ import annotations

import asyncio

from modelbus_schemas.topics import RESPONSES
from modelbus_testing.simulator import simulate, unsimulate

from tests.security.conftest import body, run_id
from tests.upstream import Upstream, request_json


def as_tenant(rid: str, tenant: str, text: str, **extra) -> dict:
    request = request_json(rid, text=text, **extra)
    request["caller"] = {"tenant": tenant, "team": "support", "user": "u1"}
    return request


async def test_two_tenants_with_the_same_request_id_each_get_their_own_answer(sqlite_stack):
    rid = f"xt-{run_id()}"
    simulate(sqlite_stack, "gpt-4o-mini", latency_ms=400)
    try:
        async with Upstream(sqlite_stack.bootstrap) as upstream:
            responses = await upstream.tail(RESPONSES)
            await upstream.send(as_tenant(rid, "t-one", "alpha apples from tenant one"))
            await upstream.send(as_tenant(rid, "t-two", "bravo bananas from tenant two"))
            got = await responses.collect(lambda r: r.key.decode() == rid, 3, timeout=10)
            await responses.stop()
    finally:
        unsimulate(sqlite_stack, "gpt-4o-mini")
    answers = {body(r)["tenant"]: body(r) for r in got}
    assert len(got) == 2 and set(answers) == {"t-one", "t-two"}, [body(r) for r in got]
    assert all(a["status"] == "ok" for a in answers.values()), answers
    assert "alpha" in answers["t-one"]["output"] and "bravo" not in answers["t-one"]["output"]
    assert "bravo" in answers["t-two"]["output"] and "alpha" not in answers["t-two"]["output"]


async def test_a_colon_in_a_tenant_name_does_not_collide_with_another_tenants_key(sqlite_stack):
    run = run_id()
    first, second = f"colon-a-{run}", f"colon-b-{run}"
    async with Upstream(sqlite_stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        await upstream.send(as_tenant(first, "acme:x", "first tenant text",
                                      idempotency_key=f"K77-{run}"))
        await asyncio.sleep(0.5)
        await upstream.send(as_tenant(second, "acme", "second tenant text",
                                      idempotency_key=f"x:K77-{run}"))
        got = await responses.collect(lambda r: r.key.decode() in (first, second), 2,
                                      timeout=15)
        await responses.stop()
    answers = {body(r)["request_id"]: body(r) for r in got}
    assert answers[first]["status"] == "ok", answers[first]
    assert answers[second]["status"] == "ok", answers[second]
    assert first not in str(answers[second])


async def test_reusing_a_request_id_with_other_content_is_a_duplicate_naming_nothing_else(
        sqlite_stack):
    rid = f"dup-{run_id()}"
    async with Upstream(sqlite_stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        await upstream.send(as_tenant(rid, "t-one", "original question",
                                      idempotency_key=f"key-{rid}"))
        await asyncio.sleep(1.0)
        await upstream.send(as_tenant(rid, "t-one", "a different question",
                                      idempotency_key=f"key-{rid}"))
        got = await responses.collect(lambda r: r.key.decode() == rid, 2, timeout=15)
        await responses.stop()
    statuses = sorted((body(r)["status"], (body(r).get("error") or {}).get("code")) for r in got)
    assert statuses == [("error", "duplicate_request"), ("ok", None)], statuses
