"""Unit tests of ``stream_out``: the coalescer (first delta at once, then one event per
interval or per number of deltas) and a task's stream events (numbered, identified by
``StreamEvent.make_id``, the stream-started mark set before the first one leaves, the last
one ``end`` owing the rest of the result's text, or ``error``). Publishing and the store are
stand-ins that record calls."""

from __future__ import annotations

import asyncio

import orjson
from modelbus_adapter_worker.adapters import Completion, StreamDelta
from modelbus_adapter_worker.errors import ProviderError
from modelbus_adapter_worker.executor import TargetRun
from modelbus_adapter_worker.outcome import position_id, result_of
from modelbus_adapter_worker.stream_out import Coalescer, TaskStream
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.stream import StreamEvent, ToolCallDelta
from modelbus_schemas.topics import STREAM
from worker_wire_helpers import task as make_task


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_worker_coalescer_first_delta_at_once_then_by_interval():
    clock = Clock()
    c = Coalescer(flush_ms=50, flush_deltas=16, clock=clock)
    assert c.wait_s() is None
    assert c.add(StreamDelta("a")) is True  # the first delta leaves at once
    assert c.take().text == "a"
    clock.now += 0.010
    assert c.add(StreamDelta("b")) is False
    assert abs(c.wait_s() - 0.040) < 1e-9
    clock.now += 0.030
    assert c.add(StreamDelta("c")) is False
    clock.now += 0.015  # 55 ms after the last flush
    assert c.add(StreamDelta("d")) is True
    assert c.take().text == "bcd" and c.wait_s() is None


def test_worker_coalescer_flushes_at_the_delta_bound_before_the_interval():
    clock = Clock()
    c = Coalescer(flush_ms=1000, flush_deltas=3, clock=clock)
    c.add(StreamDelta("0"))
    c.take()
    assert [c.add(StreamDelta(str(i))) for i in range(1, 4)] == [False, False, True]
    assert c.take().text == "123"


class Recorder:
    """Stands in for the producer and the idempotency store; one log of what happened."""

    def __init__(self) -> None:
        self.log: list = []

    async def publish(self, out) -> None:
        self.log.append(("publish", out))

    async def mark_stream_started(self, task_id: str) -> None:
        self.log.append(("mark", task_id))

    def events(self) -> list[StreamEvent]:
        return [StreamEvent.model_validate(orjson.loads(o.value))
                for kind, o in self.log if kind == "publish"]


def _ok(task, text: str, **extra):
    return result_of(task, TargetRun("ok", completion=Completion(
        text=text, finish_reason="stop", input_tokens=3, output_tokens=5,
        response_model=task.model, **extra)))


async def test_worker_task_stream_numbers_events_and_ends_with_usage_and_owed_text():
    task = make_task(stream=True)
    rec = Recorder()
    stream = TaskStream(task, rec.publish, store=rec, flush_ms=60_000, flush_deltas=2)
    for piece in ("Hel", "lo", " wor", "ld"):
        await stream.sink(StreamDelta(piece))
        await asyncio.sleep(0)  # the pump publishes between the provider's deltas
    assert await stream.seal() == 3  # two delta events published, the end still to come
    count = await stream.close(_ok(task, "Hello world!"))
    events = rec.events()
    assert count == len(events) == 3
    assert rec.log[0] == ("mark", position_id(task))  # marked before anything left
    scope = scoped_id(task.tenant, task.request_id)
    assert [(e.seq, e.kind, e.event_id) for e in events] == [
        (i, k, StreamEvent.make_id(scope, i)) for i, k in enumerate(["delta", "delta", "end"])]
    assert [e.text for e in events] == ["Hel", "lo wor", "ld!"]  # the end owes "!"
    assert "".join(e.text for e in events) == "Hello world!"
    assert events[-1].finish_reason == "stop" and events[-1].usage.output_tokens == 5
    outs = [o for kind, o in rec.log if kind == "publish"]
    assert {(o.topic, o.key, o.ce_type) for o in outs} == {
        (STREAM, scope, StreamEvent.CE_TYPE)}


async def test_worker_task_stream_flushes_a_waiting_delta_without_a_next_one():
    task = make_task(stream=True)
    rec = Recorder()
    stream = TaskStream(task, rec.publish, flush_ms=5, flush_deltas=100)
    await stream.sink(StreamDelta("first"))
    await asyncio.sleep(0)
    await stream.sink(StreamDelta("second"))
    assert [e.text for e in rec.events()] == ["first"]
    for _ in range(200):  # the interval's timer publishes it; no further delta comes
        if len(rec.events()) == 2:
            break
        await asyncio.sleep(0.01)
    assert [e.text for e in rec.events()] == ["first", "second"]
    await stream.close(_ok(task, "firstsecond"))
    assert [e.kind for e in rec.events()] == ["delta", "delta", "end"]


async def test_worker_task_stream_tool_fragments_and_error_end():
    task = make_task(stream=True)
    rec = Recorder()
    stream = TaskStream(task, rec.publish, flush_ms=60_000, flush_deltas=16)
    await stream.sink(StreamDelta(tool_calls=[ToolCallDelta(index=0, id="c", name="f")]))
    await asyncio.sleep(0)  # the reader awaits the network between deltas
    await stream.sink(StreamDelta(tool_calls=[ToolCallDelta(index=0, arguments='{"a"')]))
    await stream.sink(StreamDelta(tool_calls=[ToolCallDelta(index=0, arguments=":1}")]))
    broken = result_of(task, TargetRun("stream_interrupted", error=ProviderError(
        "the provider's stream broke", retryable=False, code="stream_interrupted")))
    assert await stream.close(broken) == 2
    first, last = rec.events()
    assert first.tool_calls == [ToolCallDelta(index=0, id="c", name="f")]
    assert last.kind == "error" and last.error.code == "stream_interrupted"
    assert last.tool_calls == [ToolCallDelta(index=0, arguments='{"a":1}')]  # joined


async def test_worker_task_stream_with_no_delta_sends_the_whole_answer_in_its_end():
    task = make_task(stream=True)
    rec = Recorder()
    stream = TaskStream(task, rec.publish, store=rec)
    await stream.close(_ok(task, '{"n":12}'))
    [end] = rec.events()
    assert (end.seq, end.kind, end.text) == (0, "end", '{"n":12}')
    assert all(kind == "publish" for kind, _ in rec.log)  # no mark: nothing streamed early


def test_worker_stop_hold_back_never_releases_text_the_answer_cuts():
    from modelbus_adapter_worker.answer import StopHoldBack, cut_at_stops

    stops = ["a", "b", "c", "d", "STOP"]  # beyond OpenAI's 4: "STOP" is enforced here
    full = "Hello STO and then STOP and more"
    hold = StopHoldBack(stops[4:])
    released = "".join(hold.feed(piece) for piece in ("Hel", "lo ST", "O an", "d then S",
                                                      "TO", "P and", " more"))
    assert released == cut_at_stops(full, stops[4:]) == "Hello STO and then "
    assert StopHoldBack(None).feed("x") == "x"


async def test_worker_task_stream_holds_text_past_a_stop_sequence_back():
    task = make_task(stream=True, params={"stop": ["1", "2", "3", "4", "END"]})
    rec = Recorder()
    stream = TaskStream(task, rec.publish, flush_ms=60_000, flush_deltas=1)
    for piece in ("The answer", " is 42 E", "ND then secrets"):
        await stream.sink(StreamDelta(piece))
    result = _ok(task, "The answer is 42 ")  # answer.finish cut it at "END"
    await stream.close(result)
    events = rec.events()
    assert "".join(e.text for e in events) == result.text
    assert not any("secrets" in e.text or "E" in e.text for e in events)


async def test_worker_task_stream_reader_never_waits_for_a_slow_broker_and_deltas_pile_up():
    """While a publish is in flight the provider's deltas keep being read and join the next
    event: a slow broker gets fewer, larger events, not one per token."""
    task = make_task(stream=True)
    rec, gate, began = Recorder(), asyncio.Event(), asyncio.Event()

    async def slow_publish(out) -> None:
        began.set()
        await gate.wait()
        await rec.publish(out)

    stream = TaskStream(task, slow_publish, flush_ms=1, flush_deltas=2)
    await stream.sink(StreamDelta("first "))
    await began.wait()  # the first event is on its way and the broker has not answered
    for word in ("a ", "b ", "c ", "d ", "e "):
        await asyncio.wait_for(stream.sink(StreamDelta(word)), 1)  # never blocked
    gate.set()
    for _ in range(200):
        if len(rec.events()) == 2:
            break
        await asyncio.sleep(0.01)
    count = await stream.close(_ok(task, "first a b c d e "))
    events = rec.events()
    assert [(e.seq, e.kind, e.text) for e in events] == [
        (0, "delta", "first "), (1, "delta", "a b c d e "), (2, "end", "")]
    assert count == 3 and len({e.event_id for e in events}) == 3
