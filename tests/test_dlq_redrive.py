"""The redrive tool: list and filter DLQ records, send chosen ones back once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from modelbus_cli.dlq import Filter, read_dlq, redrive
from modelbus_schemas import DeadLetterInfo, DlqReason

from tests.upstream import REQUESTS, RESPONSES, Upstream, ce_headers, request_json

pytestmark = pytest.mark.e2e


async def _plant_dlq_record(bootstrap: str, body: dict, reason: DlqReason) -> None:
    """A valid request that was dead-lettered earlier (say, by a bug since fixed)."""
    info = DeadLetterInfo.now(source_topic=REQUESTS, source_partition=0, source_offset=uuid.uuid4().int % 10**12,
                              service="router", error_class="RuntimeError",
                              error_message="bug fixed in 1.2.3", reason=reason,
                              first_failure_at=datetime.now(UTC))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            REQUESTS + ".dlq", json.dumps(body).encode(), key=body["request_id"].encode(),
            headers=ce_headers(body["request_id"]) + info.to_headers())
    finally:
        await producer.stop()


async def test_list_filters_and_redrive_is_effective_once(sqlite_stack):
    stack = sqlite_stack
    run = uuid.uuid4().hex[:8]
    rid = f"redrive-{run}"
    await _plant_dlq_record(stack.bootstrap, request_json(rid), DlqReason.UNHANDLED)
    async with Upstream(stack.bootstrap) as upstream:
        await upstream.send(b"not json at all", key=f"poison-{run}")
        dlq_tail = await upstream.tail(REQUESTS + ".dlq")
        await dlq_tail.collect(lambda r: r.key.decode() == f"poison-{run}", 1)
        await dlq_tail.stop()

        everything = await read_dlq(stack.bootstrap, [REQUESTS + ".dlq"])
        keys = {r.key.decode() for r in everything}
        assert {rid, f"poison-{run}"} <= keys
        schema_only = await read_dlq(stack.bootstrap, [REQUESTS + ".dlq"],
                                     Filter(reason="schema", key=f"poison-{run}"))
        assert [r.key.decode() for r in schema_only] == [f"poison-{run}"]
        assert schema_only[0].info.service == "router"
        chosen = await read_dlq(stack.bootstrap, [REQUESTS + ".dlq"], Filter(key=rid))
        assert len(chosen) == 1 and chosen[0].info.reason == "unhandled"

        responses = await upstream.tail(RESPONSES)
        first = await redrive(stack.bootstrap, stack.redis_url, chosen)
        second = await redrive(stack.bootstrap, stack.redis_url, chosen)
        got = await responses.collect(lambda r: r.key.decode() == rid, 2, timeout=8)
        await responses.stop()

    assert [o.sent for o in first] == [True]
    assert [o.sent for o in second] == [False] and "already redriven" in second[0].note
    assert len(got) == 1, "redriving twice has the effect of once"
    assert json.loads(got[0].value)["status"] == "ok"
