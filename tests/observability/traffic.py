"""Traffic that makes a stack export the series ops watch: requests answered through the
request path (one provider call retried after a scripted 503) and a poison record that is
dead-lettered."""

from __future__ import annotations

import uuid

import httpx

from tests.upstream import REQUESTS, RESPONSES, Upstream, request_json


async def drive_request_path(stack, prefix: str, count: int = 5) -> None:
    """``count`` requests answered (asserted) and one poison record, on ``stack``'s broker."""
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=30) as http:
        await http.put(f"{stack.simulator_url}/_sim/models/gpt-4o-mini",
                       json={"latency_ms": 5, "fail_first": 1,
                             "failure": {"kind": "status", "status": 503}})
    async with Upstream(stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        ids = [f"{prefix}-{run}-{i}" for i in range(count)]
        for rid in ids:
            await upstream.send(request_json(rid))
        await upstream.send(b"poison", key=f"poison-{run}", topic=REQUESTS)
        got = await responses.collect(lambda r: r.key.decode() in ids, len(ids))
        await responses.stop()
    assert len(got) == len(ids)
