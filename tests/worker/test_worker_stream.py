"""Streamed tasks through worker processes on the real broker, against the simulator over
real HTTP (its streams send a word every ``chunk_delay_ms``: 10 to 20 ms here), with the
machine's Redis.

The workers run with ``MODELBUS_STREAM=false``: a task with ``stream`` set is streamed
anyway. For each provider the stream events arrive on ``modelbus.stream.v1`` keyed by the
request's scoped id, signed by the worker role, numbered from 0 in order, coalesced (fewer
events than words), and their text adds up to the result's; the last is ``end`` and the
result counts the events. A stream broken after deltas ends with an ``error`` event and a
``stream_interrupted`` result after exactly one provider call (no retry, no fallback); a
failure before any delta is still retried. A redelivered task whose stream had started
(its mark is set) answers ``stream_interrupted`` without calling the provider."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from modelbus_adapter_worker.outcome import position_id
from modelbus_runtime.signing import KeyRing, verify
from modelbus_schemas import ExecutionPlan, RetrySpec, Target, TaskEvent
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.stream import StreamEvent
from modelbus_schemas.topics import RESULTS, STREAM, writer_roles

from tests.upstream import TailReader
from tests.worker.worker_helpers import TaskPublisher, make_task, start_workers, unique

WORDS = " ".join(f"word{i}" for i in range(50))  # a reply of 50 words
MODELS = {"openai": "gpt-stream", "anthropic": "claude-stream", "gemini": "gemini-stream"}


@pytest.fixture(scope="module")
def workers(tmp_path_factory, worker_stack):
    settings = {"MODELBUS_STREAM": "false", "MODELBUS_BASE_DELAY_MS": "20"}
    stack = start_workers(tmp_path_factory.mktemp("stream-workers"), worker_stack, {
        f"worker-{provider}": {"MODELBUS_PROVIDER": provider, **settings}
        for provider in MODELS})
    yield stack
    stack.stop()


async def _run(bootstrap: str, task: TaskEvent, *, results: int = 1, send_twice=False):
    """(the stream events of the task's request until its last one, its results)."""
    scope = scoped_id(task.tenant, task.request_id).encode()
    stream, out = TailReader(bootstrap, STREAM), TailReader(bootstrap, RESULTS)
    await stream.start()
    await out.start()
    try:
        async with TaskPublisher(bootstrap) as publisher:
            await publisher.send(task)
            if send_twice:
                await publisher.send(task)
        got = await out.collect(lambda r: r.key.decode() == task.request_id, results, 90)
        events = await stream.collect(lambda r: r.key == scope, 10_000, timeout=0)
        for _ in range(150):  # the last stream event leaves before the result
            if events and orjson.loads(events[-1].value)["kind"] != "delta":
                break
            events += await stream.collect(lambda r: r.key == scope, 10_000, timeout=0.2)
    finally:
        await stream.stop()
        await out.stop()
    return events, [orjson.loads(r.value) for r in got]


def _checked(records, ring: KeyRing) -> list[StreamEvent]:
    """The records as stream events, each verified as signed by a worker."""
    for r in records:
        assert verify(ring, topic=STREAM, key=r.key, value=r.value, headers=r.headers,
                      allowed_roles=writer_roles(STREAM)) == "adapter-worker"
    return [StreamEvent.model_validate_json(r.value) for r in records]


def _text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events)


@pytest.mark.parametrize("provider", list(MODELS))
async def test_worker_streams_coalesced_signed_events_that_add_up_to_the_result(
        workers, sim, provider):
    model = unique(MODELS[provider])
    # A word every 10 ms: deltas come faster than the 50 ms flush interval even when a
    # busy machine stretches the gaps a few times, so coalescing shows in the count.
    sim.behave(model, ttft_ms=20, chunk_delay_ms=10, reply=WORDS)
    task = make_task(provider, model, stream=True)
    records, results = await _run(workers.bootstrap, task, results=2, send_twice=True)
    first, again = results
    assert first == again, "the redelivery republishes the kept result, no second stream"
    events = _checked(records, KeyRing.parse(workers.signing_keys()))
    scope = scoped_id(task.tenant, task.request_id)
    assert [e.seq for e in events] == list(range(len(events)))
    assert [e.event_id for e in events] == [StreamEvent.make_id(scope, e.seq) for e in events]
    assert [e.kind for e in events] == ["delta"] * (len(events) - 1) + ["end"]
    assert first["status"] == "ok" and first["text"] == _text(events)
    assert "word49" in first["text"]
    assert first["stream_events"] == len(events)
    assert 2 <= len(events) <= 40, "deltas are coalesced, not one event per word"
    end = events[-1]
    assert end.finish_reason == first["finish_reason"] == "stop"
    assert end.usage.output_tokens == first["usage"]["output_tokens"] > 0
    assert first["ttft_ms"] is not None and first["ttft_ms"] < first["latency_ms"]
    assert sim.calls(model) == 1


async def test_worker_stream_broken_after_deltas_ends_in_error_without_retry_or_fallback(
        workers, sim):
    model, backup = unique("gpt-cut"), unique("claude-unused")
    sim.behave(model, ttft_ms=20, chunk_delay_ms=20, reply=WORDS, fail_first=1000,
               failure={"kind": "truncate"})
    task = make_task("openai", model, stream=True, plan=ExecutionPlan(mode="fallback"),
                     retry=RetrySpec(max_attempts=3, base_delay_ms=10),
                     fallbacks=[Target(provider="anthropic", model=backup)], attempt_budget=6)
    records, [result] = await _run(workers.bootstrap, task)
    events = _checked(records, KeyRing.parse(workers.signing_keys()))
    assert [e.seq for e in events] == list(range(len(events)))
    assert len(events) >= 2 and events[0].kind == "delta" and events[0].text
    last = events[-1]
    assert last.kind == "error" and last.error.code == "stream_interrupted"
    assert "truncated" in last.error.message or "broke" in last.error.message
    assert (result["status"], result["error"]["code"]) == ("error", "stream_interrupted")
    assert result["provider"] == "openai" and result["stream_events"] == len(events)
    assert len(result["attempts"]) == 1
    await asyncio.sleep(0.5)
    assert sim.calls(model) == 1 and sim.calls(backup) == 0


async def test_worker_stream_failing_before_any_delta_is_still_retried(workers, sim):
    model = unique("gpt-503-first")
    sim.behave(model, ttft_ms=20, chunk_delay_ms=10, reply=WORDS, fail_first=1,
               failure={"kind": "status", "status": 503})
    task = make_task("openai", model, stream=True,
                     retry=RetrySpec(max_attempts=3, base_delay_ms=10))
    records, [result] = await _run(workers.bootstrap, task)
    events = _checked(records, KeyRing.parse(workers.signing_keys()))
    assert result["status"] == "ok", result
    assert [a["status_code"] for a in result["attempts"]] == [503, 200]
    assert events[-1].kind == "end" and _text(events) == result["text"]
    assert [e.seq for e in events] == list(range(len(events)))
    assert sim.calls(model) == 2


async def test_worker_redelivered_task_whose_stream_had_started_is_not_asked_again(
        workers, sim, redis):
    model = unique("gpt-crashed")
    sim.behave(model, chunk_delay_ms=10, reply=WORDS)
    task = make_task("openai", model, stream=True)
    # What a worker killed mid-stream leaves: the mark, no kept output.
    await redis.set(f"mb:worker:streamed:{position_id(task)}", b"1", ex=60)
    _, [result] = await _run(workers.bootstrap, task)
    assert (result["status"], result["error"]["code"]) == ("error", "stream_interrupted")
    await asyncio.sleep(0.5)
    assert sim.calls(model) == 0


async def test_worker_stream_timing_out_after_deltas_is_interrupted_not_retried(workers, sim):
    model = unique("gemini-slow")
    sim.behave(model, ttft_ms=20, chunk_delay_ms=8000, reply=WORDS)
    task = make_task("gemini", model, stream=True,
                     retry=RetrySpec(max_attempts=3, base_delay_ms=10, attempt_timeout_ms=3000))
    records, [result] = await _run(workers.bootstrap, task)
    events = _checked(records, KeyRing.parse(workers.signing_keys()))
    assert [e.kind for e in events] == ["delta", "error"] and events[0].text
    assert "timed out" in events[-1].error.message
    assert (result["error"]["code"], len(result["attempts"])) == ("stream_interrupted", 1)
    assert sim.calls(model) == 1
