"""Identity from the validated event, not its headers; conflicts stored and flagged; exact
redeliveries idempotent; unauthenticated records kept as flagged evidence, out of the lineage;
lineage keyed by (tenant, request id). Unit tests of the record and the store (SQLite and
PostgreSQL), no broker."""

from __future__ import annotations

import uuid
from dataclasses import replace

from modelbus_audit.lineage import build_lineage, by_tenant
from modelbus_audit.record import AuditRecord
from modelbus_audit.render import render_all
from modelbus_audit.timeline import build_timeline
from modelbus_runtime.signing import KeyRing, Signer
from modelbus_schemas import decode, encode
from modelbus_schemas.events import RequestEvent, ResultEvent
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import REQUESTS
from sqlalchemy import text

RING = KeyRing.parse("k1:" + "s" * 32)


def signed(message, role: str, ring: KeyRing = RING):
    """``message`` with the signature ``role`` would put on it."""
    hmap = dict(message.headers)
    header = Signer(ring, role).header(message.topic, message.key, message.value,
                                       hmap.get("ce_id"), hmap.get("ce_type"))
    return replace(message, headers=[*message.headers, header])


def record(message, ring: KeyRing | None = RING) -> AuditRecord:
    return AuditRecord.from_message(message.topic, message.partition, message.offset,
                                    message.key, message.value, message.headers,
                                    message.timestamp_ms, ring)


def junk(flow, ce_id: str, offset: int):
    """An upstream-writable record on the requests topic that claims another event's ce_id."""
    return replace(flow.request, offset=offset, value=b'{"junk": true}',
                   headers=[("ce_id", ce_id.encode()), ("ce_type", b"io.modelbus.task.v1")])


def test_identity_is_the_body_id_whatever_the_ce_id_header(flow):
    lying = replace(flow.tasks[0], headers=[("ce_id", b"something-else"),
                                            *[h for h in flow.tasks[0].headers if h[0] != "ce_id"]])
    got = record(signed(lying, "router"))
    scope = scoped_id("acme", flow.request_id)
    assert got.identity == got.event_id == f"task:{scope}:task:0"
    assert (got.request_id, got.tenant, got.flags, got.signed_by) == (
        flow.request_id, "acme", None, "router")
    request = record(flow.request)
    assert request.identity == f"request:{scope}"


def test_undecodable_record_is_identified_by_position_and_flagged(flow):
    got = record(junk(flow, f"{flow.request_id}:task:0", 7))
    assert got.identity == f"{REQUESTS}:0:7"
    assert got.flags == "undecoded"
    assert got.kind == "task"  # what its header claims, kept as evidence; never a step


def test_results_and_responses_take_the_tenant_from_their_field(new_flow):
    flow = new_flow(f"req-{uuid.uuid4().hex[:6]}", tenant="globex")
    assert {record(m, None).tenant for m in [*flow.results, flow.response]} == {"globex"}


async def test_ce_id_trick_leaves_a_complete_lineage(store, flow):
    """Junk with the ce_ids the real events carry, sent first: the real events are all kept."""
    scope = scoped_id("acme", flow.request_id)
    trick = [f"{p}:task:0" for p in (flow.request_id, scope)] \
        + [f"{p}:result:0" for p in (flow.request_id, scope)] \
        + [f"{p}:response" for p in (flow.request_id, scope)] + [flow.request_id]
    junks = [record(junk(flow, ce_id, 10 + n)) for n, ce_id in enumerate(trick)]
    await store.write(junks)
    await store.write([record(signed(m, role)) for m, role in (
        (flow.request, "gateway"), *((t, "router") for t in flow.tasks),
        *((r, "adapter-worker") for r in flow.results), (flow.response, "aggregator"))])
    lineage = build_lineage(flow.request_id, await store.lineage(flow.request_id))
    assert lineage.request is not None and lineage.request.topic == REQUESTS
    assert [(len(p.tasks), len(p.results)) for p in lineage.parts] == [(1, 1), (1, 1)]
    assert len(lineage.responses) == 1
    assert len(lineage.flagged) == len(trick)
    assert all(e.flags == "undecoded" for e in lineage.flagged)


async def test_conflicting_copy_is_stored_and_flagged_redelivery_is_not(store, flow):
    original = signed(flow.results[0], "adapter-worker")
    await store.write([record(original)])
    # exact redelivery, at the same offset and at another one: still one row
    await store.write([record(original), record(replace(original, offset=original.offset + 1))])
    assert await store.count() == 1
    event = decode(ResultEvent, original.value)
    other = replace(original, offset=original.offset + 2,
                    value=encode(event.model_copy(update={"text": "another answer"})))
    await store.write([record(signed(replace(other, headers=flow.results[0].headers),
                                     "adapter-worker"))])
    rows = await store.lineage(flow.request_id)
    assert [(r.flags, r.kafka_offset) for r in rows] == [
        (None, original.offset), ("conflict", original.offset + 2)]
    assert rows[0].identity == rows[1].identity and rows[0].event_id != rows[1].event_id
    lineage = build_lineage(flow.request_id, rows)
    assert [r.payload["text"] for r in lineage.parts[0].results] == ["Kafka is a distributed log."]
    assert [r.kafka_offset for r in lineage.flagged] == [original.offset + 2]
    assert (await store.verify()).ok


async def test_forged_result_first_is_flagged_and_the_real_one_stays_genuine(store, flow):
    real = signed(flow.results[0], "adapter-worker")
    event = decode(ResultEvent, real.value)
    forged = lambda n: encode(event.model_copy(update={"text": f"forged {n}"}))
    unsigned = replace(flow.results[0], offset=real.offset - 1, value=forged(1))
    wrong_role = signed(replace(flow.results[0], offset=real.offset - 2, value=forged(2)),
                        "router")
    other_key = signed(replace(flow.results[0], offset=real.offset - 3, value=forged(3)),
                       "adapter-worker", KeyRing.parse("k9:" + "x" * 32))
    await store.write([record(m) for m in (unsigned, wrong_role, other_key)])
    await store.write([record(real)])
    rows = {r.kafka_offset: r for r in await store.lineage(flow.request_id)}
    assert rows[real.offset].flags is None and rows[real.offset].signed_by == "adapter-worker"
    assert "unsigned" in rows[unsigned.offset].auth_error
    assert "may not write" in rows[wrong_role.offset].auth_error
    assert "unknown key id" in rows[other_key.offset].auth_error
    for forged in (unsigned, wrong_role, other_key):
        assert "unauthenticated" in rows[forged.offset].flags
    lineage = build_lineage(flow.request_id, list(rows.values()))
    assert [r.kafka_offset for r in lineage.parts[0].results] == [real.offset]
    assert [e["flags"] for e in lineage.to_dict()["flagged"]] == [
        "conflict,unauthenticated", "conflict,unauthenticated", "unauthenticated"]
    steps = build_timeline(lineage)
    assert [s["kind"] for s in steps].count("flagged") == 3
    assert [s["kind"] for s in steps].count("result") == 1


async def test_lineage_is_keyed_by_tenant_and_request_id(store, new_flow):
    rid = f"xt-{uuid.uuid4().hex[:6]}"
    acme, globex = new_flow(rid, tenant="acme"), new_flow(rid, tenant="globex")
    await store.write(acme.records() + globex.records())
    assert await store.count() == 12  # the same ids for two tenants: nothing merged
    only = await store.lineage(rid, tenant="globex")
    assert {e.tenant for e in only} == {"globex"} and len(only) == 6
    both = by_tenant(rid, await store.lineage(rid))
    assert [(x.tenant, x.request.tenant, len(x.responses)) for x in both] == [
        ("acme", "acme", 1), ("globex", "globex", 1)]
    shown = render_all(rid, both)
    assert f"request id {rid} was used by 2 tenants (acme, globex)" in shown
    assert "tenant=acme" in shown and "tenant=globex" in shown


async def test_clearing_the_identity_of_a_row_is_detected(store, flow):
    await store.write(flow.records())
    async with store.engine.begin() as connection:
        await connection.execute(text(
            "UPDATE audit_events SET identity = NULL, flags = 'x' WHERE kind = 'response'"))
    report = await store.verify()
    assert not report.ok and "content_hash mismatch" in report.describe()


async def test_usage_report_counts_neither_forged_results_nor_other_tenants_teams(
        store, new_flow):
    from modelbus_audit.queries import Filters

    rid = f"xt-{uuid.uuid4().hex[:6]}"
    acme, globex = new_flow(rid, tenant="acme"), new_flow(rid, tenant="globex")
    request = decode(RequestEvent, globex.request.value)
    retagged = encode(request.model_copy(
        update={"caller": request.caller.model_copy(update={"team": "zeta"})}))
    globex.messages[0] = replace(globex.request, value=retagged)
    event = decode(ResultEvent, acme.results[0].value)
    forged = replace(acme.results[0], offset=acme.results[0].offset + 1000,
                     value=encode(event.model_copy(update={"text": "x", "cost_usd": 5.0})))
    # the flows unchecked (no ring), the unsigned forgery checked: flagged unauthenticated
    await store.write([record(m, None) for m in [*acme.messages, *globex.messages]]
                      + [record(forged)])
    rows = await store.usage_report(Filters(tenant="acme"))
    assert round(sum(r["cost_usd"] for r in rows), 6) == 0.00012  # the forged $5 not counted
    assert {r["team"] for r in rows} == {"support"}  # not globex's "zeta"


async def test_a_forged_record_naming_another_tenant_does_not_split_the_lineage(store, flow):
    event = decode(ResultEvent, flow.results[0].value)
    forged = replace(flow.results[0], offset=flow.results[0].offset + 500,
                     value=encode(event.model_copy(update={"tenant": "evil"})))
    await store.write([record(m, None) for m in flow.messages] + [record(forged)])
    [lineage] = by_tenant(flow.request_id, await store.lineage(flow.request_id))
    assert lineage.tenant == "acme"
    assert [(e.tenant, e.flags) for e in lineage.flagged] == [("evil", "conflict,unauthenticated")]
