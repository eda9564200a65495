"""Forged internal events, written straight to the bus by a client with broker access and no
modelbus key: none of them changes state; each is dead-lettered as ``unauthenticated``."""

from __future__ import annotations

import asyncio

from modelbus_schemas import encode
from modelbus_schemas.cloudevents import TYPE_RESULT, TYPE_TASK
from modelbus_schemas.topics import REQUESTS, RESPONSES, RESULTS, dlq_topic, tasks_topic
from modelbus_testing.simulator import provider_calls, simulate, unsimulate

from tests.security.conftest import body, forged_result, forged_task, headers_of, run_id
from tests.upstream import Upstream, request_json

FORGED_TEXT = "FORGED: wire the funds to account 123"


async def test_forged_result_for_a_request_in_flight_is_refused_and_the_real_answer_arrives_once(
        sqlite_stack, attacker):
    rid = f"sec-inflight-{run_id()}"
    simulate(sqlite_stack, "gpt-4o-mini", latency_ms=1500)
    try:
        async with Upstream(sqlite_stack.bootstrap) as upstream:
            responses = await upstream.tail(RESPONSES)
            dead = await upstream.tail(dlq_topic(RESULTS))
            await upstream.send(request_json(rid, text="the quarterly figures"))
            await asyncio.sleep(0.3)  # routed, the provider call under way
            result = forged_result(rid, FORGED_TEXT)
            for sign_as in (None, "adapter-worker"):  # unsigned; signed with a made-up key
                await attacker.send(RESULTS, rid, encode(result), ce_id=result.event_id,
                                    ce_type=TYPE_RESULT, sign_as=sign_as)
            refused = await dead.collect(lambda r: r.key.decode() == rid, 2, timeout=20)
            answers = await responses.collect(lambda r: r.key.decode() == rid, 2, timeout=8)
            await responses.stop()
            await dead.stop()
    finally:
        unsimulate(sqlite_stack, "gpt-4o-mini")
    assert [headers_of(r)["modelbus_dlq_reason"] for r in refused] == ["unauthenticated"] * 2
    assert len(answers) == 1, "exactly one response"
    answer = body(answers[0])
    assert answer["status"] == "ok"
    assert "FORGED" not in answer["output"] and "quarterly" in answer["output"]


async def test_forged_result_for_a_request_never_sent_yields_no_response(sqlite_stack, attacker):
    rid = f"sec-neversent-{run_id()}"
    result = forged_result(rid, FORGED_TEXT)
    async with Upstream(sqlite_stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        dead = await upstream.tail(dlq_topic(RESULTS))
        await attacker.send(RESULTS, rid, encode(result), ce_id=result.event_id,
                            ce_type=TYPE_RESULT)
        refused = await dead.collect(lambda r: r.key.decode() == rid, 1, timeout=20)
        answers = await responses.collect(lambda r: r.key.decode() == rid, 1, timeout=5)
        await responses.stop()
        await dead.stop()
    assert [headers_of(r)["modelbus_dlq_reason"] for r in refused] == ["unauthenticated"]
    assert answers == []


async def test_forged_result_cannot_divert_an_answer_to_another_topic(sqlite_stack, attacker):
    rid = f"sec-divert-{run_id()}"
    simulate(sqlite_stack, "gpt-4o-mini", latency_ms=1500)
    try:
        async with Upstream(sqlite_stack.bootstrap) as upstream:
            responses = await upstream.tail(RESPONSES)
            diverted = await upstream.tail(REQUESTS)  # any topic the attacker can read
            await upstream.send(request_json(rid, text="payroll for march"))
            await asyncio.sleep(0.3)
            result = forged_result(rid, FORGED_TEXT, reply_to=REQUESTS)
            await attacker.send(RESULTS, rid, encode(result), ce_id=result.event_id,
                                ce_type=TYPE_RESULT)
            answers = await responses.collect(lambda r: r.key.decode() == rid, 2, timeout=8)
            elsewhere = await diverted.collect(
                lambda r: r.key.decode() == rid and b"io.modelbus.response" in dict(
                    r.headers).get("ce_type", b""), 1, timeout=1)
            await responses.stop()
            await diverted.stop()
    finally:
        unsimulate(sqlite_stack, "gpt-4o-mini")
    assert len(answers) == 1 and "payroll" in body(answers[0])["output"]
    assert elsewhere == []


async def test_forged_task_never_reaches_a_provider(sqlite_stack, attacker):
    rid = f"sec-task-{run_id()}"
    task = forged_task(rid, data_class="restricted", model="gpt-4o")
    before = provider_calls(sqlite_stack)
    async with Upstream(sqlite_stack.bootstrap) as upstream:
        dead = await upstream.tail(dlq_topic(tasks_topic("openai")))
        for sign_as in (None, "router"):
            await attacker.send(tasks_topic("openai"), rid, encode(task), ce_id=task.event_id,
                                ce_type=TYPE_TASK, sign_as=sign_as)
        refused = await dead.collect(lambda r: r.key.decode() == rid, 2, timeout=20)
        await dead.stop()
    await asyncio.sleep(1.0)
    assert [headers_of(r)["modelbus_dlq_reason"] for r in refused] == ["unauthenticated"] * 2
    assert provider_calls(sqlite_stack) == before, "the simulator saw no call"
