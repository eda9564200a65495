"""The "stream started" mark with the real Redis: a worker that dies after a streamed
task's first event left leaves the mark and no kept output, so the redelivered task is
answered ``stream_interrupted`` without running the target again; with Redis down the
stream still goes out (the mark is skipped, as the store's other writes are). The executor
is a stand-in that feeds the sink as a provider stream would."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import redis.asyncio as aioredis
from modelbus_adapter_worker.adapters import Completion, StreamDelta
from modelbus_adapter_worker.executor import TargetRun
from modelbus_adapter_worker.handler import TaskHandler
from modelbus_adapter_worker.idempotency import OutputStore
from modelbus_adapter_worker.outcome import position_id
from modelbus_schemas import ResultEvent
from modelbus_schemas.stream import StreamEvent
from modelbus_schemas.topics import RESULTS, STREAM
from worker_wire_helpers import task as make_task


class StreamingExecutor:
    """Sends two deltas, then answers, or dies (``crash``) as a killed worker would."""

    def __init__(self, crash: bool = False) -> None:
        self.crash = crash
        self.calls = 0

    async def run(self, task, sink=None) -> TargetRun:
        self.calls += 1
        await sink(StreamDelta("Hello"))
        await asyncio.sleep(0.01)  # the next delta comes over the network
        await sink(StreamDelta(" there"))
        if self.crash:
            raise RuntimeError("worker killed")
        return TargetRun("ok", completion=Completion("Hello there", "stop", 2, 2, "m"))


class Published:
    def __init__(self) -> None:
        self.outputs = []

    async def __call__(self, out) -> None:
        self.outputs.append(out)

    def stream(self) -> list[StreamEvent]:
        return [StreamEvent.model_validate(orjson.loads(o.value))
                for o in self.outputs if o.topic == STREAM]


def _task():
    return make_task(stream=True)  # the store's prefixes are unique per test instead


async def test_worker_redelivery_after_a_crash_mid_stream_is_interrupted_not_rerun(
        redis_client):
    prefix = f"test:mark:{uuid.uuid4().hex[:6]}"
    store = OutputStore(redis_client, ttl_s=60, prefix=f"{prefix}:out",
                        stream_prefix=f"{prefix}:streamed")
    task, published = _task(), Published()
    try:
        await TaskHandler(StreamingExecutor(crash=True), store).handle(task, published)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the stand-in crash did not happen")
    assert [e.text for e in published.stream()] == ["Hello"]  # the first left at once
    assert await redis_client.ttl(f"{prefix}:streamed:{position_id(task)}") > 0

    again = StreamingExecutor()
    out = await TaskHandler(again, store).handle(task, published)
    result = ResultEvent.model_validate(orjson.loads(out.value))
    assert out.topic == RESULTS and again.calls == 0
    assert (result.status, result.error.code) == ("error", "stream_interrupted")
    assert await TaskHandler(again, store).handle(task, published) == out  # kept
    await redis_client.delete(*await redis_client.keys(f"{prefix}:*"))


async def test_worker_stream_goes_out_with_redis_down():
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        published = Published()
        executor = StreamingExecutor()
        out = await TaskHandler(executor, OutputStore(dead)).handle(_task(), published)
        result = ResultEvent.model_validate(orjson.loads(out.value))
        events = published.stream()
        assert result.status == "ok" and result.stream_events == len(events) >= 2
        assert events[0].text == "Hello" and events[-1].kind == "end"
        assert "".join(e.text for e in events) == result.text == "Hello there"
        assert executor.calls == 1
    finally:
        await dead.aclose()
