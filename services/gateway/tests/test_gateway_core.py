"""The gateway core without Kafka or HTTP: correlation, bounded pending table, deadlines,
and Idempotency-Key (real Redis). ``publish`` is a stand-in that records the events and
lets the test answer them, as the reply topic would."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from modelbus_gateway.correlation import PendingFull, PendingReplies
from modelbus_gateway.errors import GatewayError
from modelbus_gateway.gateway import Gateway
from modelbus_gateway.idempotency import IdempotencyStore
from modelbus_schemas import Caller, ChatMessage, ErrorCode, ErrorInfo, RequestEvent, ResponseEvent
from modelbus_schemas.identity import scoped_id


class Loop:
    """Publishes into a list; ``answer`` plays the aggregator."""

    def __init__(self, auto: bool = True) -> None:
        self.sent: list[RequestEvent] = []
        self.auto = auto
        self.gateway: Gateway | None = None

    async def publish(self, request: RequestEvent) -> None:
        self.sent.append(request)
        if self.auto:
            asyncio.get_running_loop().call_later(0.01, self.answer, request)

    def answer(self, request: RequestEvent, status: str = "ok") -> None:
        error = ErrorInfo(code=ErrorCode.UNKNOWN_TASK, message="x") if status == "error" else None
        self.gateway.on_response(ResponseEvent(
            event_id=ResponseEvent.make_id(scoped_id(request.caller.tenant, request.request_id)),
            request_id=request.request_id, tenant=request.caller.tenant, status=status, output=f"answer to {request.messages[-1].content}", error=error,
            created_at=datetime.now(UTC)))


def _request(text: str = "hi", budget_ms: int = 2000, tenant: str = "t") -> RequestEvent:
    return RequestEvent(request_id=f"gw-{uuid.uuid4().hex}", task="summarize",
                        messages=[ChatMessage(role="user", content=text)],
                        caller=Caller(tenant=tenant), latency_budget_ms=budget_ms)


def _gateway(loop: Loop, redis=None, capacity: int = 100) -> Gateway:
    gateway = Gateway(loop.publish, PendingReplies(capacity),
                      IdempotencyStore(redis) if redis is not None else None,
                      grace_ms=50, poll_ms=10)
    loop.gateway = gateway
    return gateway


async def test_concurrent_calls_are_matched_by_request_id_and_leave_no_state():
    loop = Loop()
    gateway = _gateway(loop, capacity=1000)
    requests = [_request(f"q{i}") for i in range(200)]
    responses = await asyncio.gather(*(gateway.call(r) for r in requests))
    assert [r.output for r in responses] == [f"answer to q{i}" for i in range(200)]
    assert len(gateway.pending) == 0


async def test_no_answer_is_504_at_the_deadline_and_the_entry_is_removed():
    gateway = _gateway(Loop(auto=False))
    started = asyncio.get_running_loop().time()
    with pytest.raises(GatewayError) as caught:
        await gateway.call(_request(budget_ms=100))
    assert caught.value.status == 504
    assert asyncio.get_running_loop().time() - started >= 0.1
    assert len(gateway.pending) == 0


async def test_full_pending_table_refuses_with_503_then_recovers():
    loop = Loop(auto=False)
    gateway = _gateway(loop, capacity=2)
    waiting = [asyncio.create_task(gateway.call(_request())) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(GatewayError) as caught:
        await gateway.call(_request())
    assert caught.value.status == 503 and caught.value.retry_after_s == 1
    for request in loop.sent:
        loop.answer(request)
    assert [r.status for r in await asyncio.gather(*waiting)] == ["ok", "ok"]
    assert len(gateway.pending) == 0


def test_pending_table_keeps_a_shared_entry_until_the_last_waiter_leaves():
    async def scenario():
        table = PendingReplies(1)
        first, second = table.join("a"), table.join("a")
        assert first is second and len(table) == 1
        with pytest.raises(PendingFull):
            table.join("b")
        table.leave("a")
        assert "a" in table
        table.leave("a")
        assert "a" not in table and first.cancelled()

    asyncio.run(scenario())


async def test_publish_failure_is_503_and_frees_the_entry():
    async def broken(_: RequestEvent) -> None:
        raise ConnectionError("broker down")

    gateway = Gateway(broken, PendingReplies(10), None)
    with pytest.raises(GatewayError) as caught:
        await gateway.call(_request())
    assert caught.value.status == 503 and len(gateway.pending) == 0


async def test_idempotent_retries_share_one_request_and_one_response(redis_client):
    loop = Loop(auto=False)
    gateway = _gateway(loop, redis_client)
    key, tenant = f"k-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex[:6]}"
    first = asyncio.create_task(gateway.call(_request(tenant=tenant), key))
    await asyncio.sleep(0.05)
    retry = asyncio.create_task(gateway.call(_request(tenant=tenant), key))
    await asyncio.sleep(0.05)
    assert len(loop.sent) == 1, "the retry in flight was not published again"
    loop.answer(loop.sent[0])
    a, b = await first, await retry
    assert a == b
    await asyncio.sleep(0.05)  # the response is stored in the background
    # a retry after completion, through another gateway instance sharing Redis
    other = _gateway(Loop(auto=False), redis_client)
    assert await other.call(_request(tenant=tenant), key) == a
    # the same key under another tenant is another call
    elsewhere = await _gateway(Loop(), redis_client).call(_request(tenant=tenant + "x"), key)
    assert elsewhere.request_id != a.request_id


async def test_idempotency_key_reused_for_another_call_is_409(redis_client):
    gateway = _gateway(Loop(), redis_client)
    key, tenant = f"k-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex[:6]}"
    await gateway.call(_request("one", tenant=tenant), key)
    with pytest.raises(GatewayError) as caught:
        await gateway.call(_request("two", tenant=tenant), key)
    assert caught.value.status == 409


async def test_error_response_releases_the_key_so_a_later_retry_is_a_new_attempt(redis_client):
    loop = Loop(auto=False)
    gateway = _gateway(loop, redis_client)
    key, tenant = f"k-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex[:6]}"
    failing = asyncio.create_task(gateway.call(_request(tenant=tenant), key))
    await asyncio.sleep(0.05)
    loop.answer(loop.sent[0], status="error")
    assert (await failing).status == "error"
    loop.auto = True
    again = await gateway.call(_request(tenant=tenant), key)
    assert again.status == "ok" and again.request_id != loop.sent[0].request_id
