"""The aggregator's part of streaming (issue 20), over the machine's Redis with an in-memory
outbox: a streaming chain marks only its last stage's task to stream (retries of that stage
too, until its output began to leave modelbus); responses carry the answering call's time
to first token and the request's stream events; a broken stream answers with its
``stream_interrupted`` error. One response per request, as always."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.metrics import observe_response
from modelbus_aggregator.responses import single_response
from modelbus_aggregator.state import FanInStore
from modelbus_schemas import ChainStage, ErrorCode, ExecutionPlan, Target
from prometheus_client import REGISTRY

from services.aggregator.tests.aggregator_factories import (
    T0,
    RecordingOutbox,
    make_result,
    make_task,
)

STAGES = [ChainStage(name=n, target=Target(provider="openai", model=f"m-{n}"))
          for n in ("draft", "check", "polish")]
INTERRUPTED = {"code": "stream_interrupted", "message": "the provider stream broke"}


@pytest.fixture
def agg(redis_client):
    outbox = RecordingOutbox()
    store = FanInStore(redis_client, f"test:agg-stream:{uuid.uuid4().hex[:8]}", 10_000)
    return Aggregator(store, outbox, clock=lambda: T0 + timedelta(seconds=1)), outbox


def _chain(stream: bool, step: int = 0) -> ExecutionPlan:
    return ExecutionPlan(mode="chain", chain=STAGES, stream=stream, step=step)


def _stage_result(rid: str, stream: bool, step: int, origin=None, **kw):
    plan = _chain(stream, step)
    origin = origin or make_task(rid, 0, 1, plan, model=STAGES[step].target.model)
    return make_result(rid, 0, 1, plan=plan, origin=origin, text=kw.pop("text", f"out {step}"),
                       model=STAGES[step].target.model, **kw)


async def _run_chain(agg, outbox, rid: str, stream: bool, last: dict | None = None):
    """Answer stages 0 and 1 from the tasks the aggregator dispatched; stage 2 with
    ``last`` (a result's fields)."""
    await agg.on_result(_stage_result(rid, stream, 0))
    await agg.on_result(_stage_result(rid, stream, 1, origin=outbox.tasks[-1]))
    await agg.on_result(_stage_result(rid, stream, 2, origin=outbox.tasks[-1], **(last or {})))


async def test_a_streaming_chain_streams_only_its_last_stage(agg):
    agg, outbox = agg
    await _run_chain(agg, outbox, "chain-stream", True,
                     last={"text": "final", "ttft_ms": 42.0, "stream_events": 5})
    assert [(t.plan.step, t.plan.stream, t.stream) for t in outbox.tasks] == [
        (1, True, False), (2, True, True)]
    [response] = outbox.responses
    assert response.status == "ok" and response.output == "final"
    assert response.ttft_ms == 42.0 and response.stream_events == 5


async def test_a_chain_that_does_not_stream_marks_no_stage(agg):
    agg, outbox = agg
    await _run_chain(agg, outbox, "chain-quiet", False, last={"ttft_ms": 30.0})
    assert [t.stream for t in outbox.tasks] == [False, False]
    [response] = outbox.responses
    assert response.stream_events == 0 and response.ttft_ms == 30.0  # streamed or not


async def test_a_single_answer_carries_its_ttft_and_stream_events(agg):
    agg, outbox = agg
    await agg.on_result(make_result("single", text="hi", ttft_ms=12.5, stream_events=3,
                                    plan=ExecutionPlan(stream=True)))
    [response] = outbox.responses
    assert (response.output, response.ttft_ms, response.stream_events) == ("hi", 12.5, 3)


async def test_a_broken_stream_answers_with_stream_interrupted(agg):
    agg, outbox = agg
    await agg.on_result(make_result("broken", status="error", error=INTERRUPTED,
                                    ttft_ms=8.0, stream_events=2,
                                    plan=ExecutionPlan(stream=True)))
    [response] = outbox.responses
    assert response.status == "error" and response.error.code is ErrorCode.STREAM_INTERRUPTED
    assert response.output is None
    assert response.stream_events == 2 and response.ttft_ms == 8.0  # what the caller saw


async def test_a_last_stage_whose_stream_broke_is_not_retried(agg):
    agg, outbox = agg
    await _run_chain(agg, outbox, "chain-broken", True,
                     last={"status": "error", "error": INTERRUPTED, "stream_events": 3,
                           "text": None})
    assert [t.plan.step for t in outbox.tasks] == [1, 2]  # no second run of stage 2
    [response] = outbox.responses
    assert response.status == "partial" and response.output == "out 1"
    assert response.error.code is ErrorCode.STREAM_INTERRUPTED
    assert response.stream_events == 3


async def test_a_last_stage_that_failed_before_streaming_is_retried_streaming(agg):
    agg, outbox = agg
    await _run_chain(agg, outbox, "chain-retry", True,
                     last={"status": "error", "text": None})
    retry = outbox.tasks[-1]
    assert [t.plan.step for t in outbox.tasks] == [1, 2, 2]
    assert retry.event_id != outbox.tasks[1].event_id and retry.stream is True
    assert outbox.responses == []


def test_streamed_responses_are_counted_by_task():
    def count(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"task": "t"}) or 0.0

    before = (count("modelbus_response_stream_events_count"),
              count("modelbus_response_ttft_seconds_count"))
    response = make_result("metrics", text="x")
    streamed = single_response(response.model_copy(update={"ttft_ms": 5.0, "stream_events": 4}))
    observe_response(streamed)
    observe_response(single_response(response))  # did not stream: not counted
    assert count("modelbus_response_stream_events_count") == before[0] + 1
    assert count("modelbus_response_ttft_seconds_count") == before[1] + 1
    assert count("modelbus_response_stream_events_sum") >= 4
