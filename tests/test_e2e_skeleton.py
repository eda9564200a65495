"""End to end through a real broker: upstream → router → worker → simulator → aggregator →
reply topic, with lineage in the audit store (SQLite and PostgreSQL), and bad input."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from modelbus_audit.store import AuditStore

from tests.upstream import REQUESTS, RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

COMPLETE = {"request", "task", "result", "response"}


async def _lineage_kinds(store: AuditStore, request_id: str) -> set[str]:
    return {row.kind for row in await store.lineage(request_id)}


async def _wait_for_lineages(url: str, request_ids: list[str], timeout: float = 30.0) -> dict:
    store = await AuditStore.open(url)
    try:
        kinds: dict[str, set[str]] = {}
        for _ in range(int(timeout / 0.25)):
            kinds = {rid: await _lineage_kinds(store, rid) for rid in request_ids}
            if all(COMPLETE <= k for k in kinds.values()):
                break
            await asyncio.sleep(0.25)
        return kinds
    finally:
        await store.close()


async def test_fifty_requests_get_fifty_responses_and_complete_lineages(stack):
    run = uuid.uuid4().hex[:8]
    ids = [f"e2e-{run}-{i}" for i in range(50)]
    async with Upstream(stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        for rid in ids:
            await upstream.send(request_json(rid, text=f"question number {rid}"))
        got = await responses.collect(lambda r: r.key.decode().startswith(f"e2e-{run}-"), 50)
        await responses.stop()

    bodies = [json.loads(r.value) for r in got]
    assert sorted(b["request_id"] for b in bodies) == sorted(ids)
    assert all(b["status"] == "ok" for b in bodies), [b for b in bodies if b["status"] != "ok"]
    assert all(b["models"] == ["openai/gpt-4o-mini"] for b in bodies)
    assert all(r.key.decode() == json.loads(r.value)["request_id"] for r in got)
    headers = dict(got[0].headers)
    assert headers["ce_type"] == b"io.modelbus.response.v1"
    assert headers["ce_specversion"] == b"1.0"

    kinds = await _wait_for_lineages(stack.database_url, ids)
    incomplete = {rid: k for rid, k in kinds.items() if not COMPLETE <= k}
    assert not incomplete, f"incomplete lineages: {incomplete}"


async def test_bad_input_goes_to_dlq_and_unknown_task_gets_error_response(stack):
    run = uuid.uuid4().hex[:8]
    not_json = b"{this is not json"
    wrong_schema = json.dumps({"request_id": f"bad-{run}", "task": 42}).encode()
    async with Upstream(stack.bootstrap) as upstream:
        dlq = await upstream.tail(REQUESTS + ".dlq")
        responses = await upstream.tail(RESPONSES)
        await upstream.send(not_json, key=f"poison-{run}")
        await upstream.send(wrong_schema, key=f"bad-{run}")
        unknown = request_json(f"unknown-{run}", task="no-such-task")
        await upstream.send(unknown)
        after = [f"after-{run}-{i}" for i in range(3)]
        for rid in after:
            await upstream.send(request_json(rid))

        dead = await dlq.collect(lambda r: r.key.decode().endswith(run), 2)
        replies = await responses.collect(lambda r: r.key.decode().endswith(run) or
                                          r.key.decode().startswith(f"after-{run}"), 4)
        await dlq.stop()
        await responses.stop()

    assert sorted(r.value for r in dead) == sorted([not_json, wrong_schema])
    for record in dead:
        h = {k: v.decode() for k, v in record.headers}
        assert h["modelbus_dlq_source_topic"] == REQUESTS
        assert h["modelbus_dlq_reason"] == "schema"
        assert h["modelbus_dlq_service"] == "router"
        assert int(h["modelbus_dlq_source_offset"]) >= 0
        assert int(h["modelbus_dlq_source_partition"]) >= 0
        assert h["modelbus_dlq_error_class"] == "PoisonMessage"
        assert h["modelbus_dlq_error_message"]
        assert h["ce_id"] == record.key.decode(), "original headers are kept"
    wrong = next(r for r in dead if r.value == wrong_schema)
    assert "task" in dict(wrong.headers)["modelbus_dlq_error_message"].decode()

    bodies = {json.loads(r.value)["request_id"]: json.loads(r.value) for r in replies}
    assert bodies[f"unknown-{run}"]["status"] == "error"
    assert bodies[f"unknown-{run}"]["error"]["code"] == "unknown_task"
    assert "no-such-task" in bodies[f"unknown-{run}"]["error"]["message"]
    assert all(bodies[rid]["status"] == "ok" for rid in after), "requests after bad ones served"
    assert stack.group.children[0].proc.poll() is None
    assert all(c.proc.poll() is None for c in stack.group.children), "no service crashed"
