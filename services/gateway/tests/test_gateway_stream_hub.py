"""Stream events reach the streaming call they belong to and nothing else: the hub routes
by (tenant, request id), in ``seq`` order, ignoring duplicates and stopping (for the final
response to finish) on a gap or a full queue; the stream listener skips records of calls
it does not hold on their key alone and drops — counted, never raised — unsigned, forged,
wrong-role, undecodable and mislabelled records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from modelbus_gateway.metrics import STREAM_EVENTS
from modelbus_gateway.stream_hub import HubFull, StreamHub
from modelbus_gateway.stream_listener import StreamListener
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import KeyRing, Signer
from modelbus_schemas import StreamEvent, encode
from modelbus_schemas.cloudevents import ce_headers
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import STREAM

RING = KeyRing.parse("k1:" + "service-ring-secret-0123456789")
OTHER_RING = KeyRing.parse("k1:" + "attacker-ring-secret-012345678")
SCOPE = scoped_id("t-one", "gw-1")


def _event(seq: int, text: str = "x", tenant: str = "t-one", rid: str = "gw-1"
           ) -> StreamEvent:
    return StreamEvent(event_id=StreamEvent.make_id(scoped_id(tenant, rid), seq),
                       request_id=rid, tenant=tenant, task="chat", seq=seq, provider="openai",
                       model="m", text=text, created_at=datetime.now(UTC))


def _record(event: StreamEvent, *, sign_as: str | None = "adapter-worker",
            ring: KeyRing = RING, key: bytes | None = None,
            value: bytes | None = None) -> ConsumerRecord:
    key = key if key is not None else scoped_id(event.tenant, event.request_id).encode()
    value = value if value is not None else encode(event)
    headers = ce_headers(event_id=event.event_id, ce_type=StreamEvent.CE_TYPE, source="/test")
    if sign_as is not None:
        headers.append(Signer(ring, sign_as).header(
            STREAM, key, value, event.event_id.encode(), StreamEvent.CE_TYPE.encode()))
    return ConsumerRecord(STREAM, 0, event.seq, 0, 0, key, value, None, len(key), len(value),
                          tuple(headers))


def _count(outcome: str) -> float:
    return STREAM_EVENTS.labels(outcome=outcome)._value.get()


async def test_events_are_delivered_in_order_once_and_stop_at_a_gap():
    hub = StreamHub(capacity_per_call=8)
    call = hub.open(SCOPE)
    outcomes = [hub.deliver(SCOPE, _event(s, f"d{s}")) for s in (0, 1, 1, 0, 2)]
    assert outcomes == ["routed", "routed", "duplicate", "duplicate", "routed"]
    assert hub.deliver(scoped_id("t-two", "gw-1"), _event(3, tenant="t-two")) == "ignored"
    assert hub.deliver(SCOPE, _event(4)) == "gap"
    assert hub.deliver(SCOPE, _event(3)) == "stopped", "nothing after a gap: no hole in text"
    answer = asyncio.get_running_loop().create_future()
    texts = [(await call.next(answer)).text for _ in range(3)]
    assert texts == ["d0", "d1", "d2"]
    answer.set_result(None)
    assert await call.next(answer) is None
    hub.close(SCOPE)
    assert not hub.wants(SCOPE) and len(hub) == 0


async def test_a_full_queue_stops_delivery_and_a_waiting_call_wakes_on_its_answer():
    hub = StreamHub(capacity_per_call=2, max_calls=1)
    call = hub.open(SCOPE)
    assert [hub.deliver(SCOPE, _event(s)) for s in range(4)] == [
        "routed", "routed", "overflow", "stopped"]
    try:
        hub.open(scoped_id("t", "other"))
        raise AssertionError("the hub is bounded")
    except HubFull:
        pass
    answer = asyncio.get_running_loop().create_future()
    assert (await call.next(answer)).seq == 0 and (await call.next(answer)).seq == 1
    waiting = asyncio.create_task(call.next(answer))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    answer.set_result("final")
    assert await asyncio.wait_for(waiting, 5) is None


async def test_a_waiting_call_gets_an_event_as_it_arrives():
    hub = StreamHub()
    call = hub.open(SCOPE)
    answer = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(call.next(answer))
    await asyncio.sleep(0.01)
    hub.deliver(SCOPE, _event(0, "first"))
    assert (await asyncio.wait_for(waiting, 5)).text == "first"
    answer.cancel()


def _listener(hub: StreamHub) -> StreamListener:
    listener = StreamListener(RuntimeSettings(), hub)
    listener.ring = RING
    return listener


async def test_listener_routes_only_genuine_worker_events_of_held_calls(caplog):
    hub = StreamHub()
    call = hub.open(SCOPE)
    listener = _listener(hub)
    before = {o: _count(o) for o in ("routed", "ignored", "unauthenticated", "undecodable",
                                     "mismatched")}
    listener.handle(_record(_event(0, "not ours", tenant="t-two")))  # skipped on its key
    for forged in (_record(_event(0, "FORGED"), sign_as=None),
                   _record(_event(0, "FORGED"), sign_as="aggregator"),
                   _record(_event(0, "FORGED"), ring=OTHER_RING)):
        listener.handle(forged)
    listener.handle(_record(_event(0), value=b'{"not": "a stream event"}'))
    listener.handle(_record(_event(0, "FORGED", rid="gw-2"), key=SCOPE.encode()))
    listener.handle(ConsumerRecord(STREAM, 0, 9, 0, 0, None, b"x", None, 0, 1, ()))
    listener.handle(_record(_event(0, "genuine")))
    assert call.queue.qsize() == 1 and call.queue.get_nowait().text == "genuine"
    assert _count("routed") - before["routed"] == 1
    assert _count("ignored") - before["ignored"] == 2
    assert _count("unauthenticated") - before["unauthenticated"] == 3
    assert _count("undecodable") - before["undecodable"] == 1
    assert _count("mismatched") - before["mismatched"] == 1
    assert caplog.text.count("not authentic") == 3
