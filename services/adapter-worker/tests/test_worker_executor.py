"""The executor's attempt loop (a unit test of one module: a scripted in-memory transport
stands in for HTTP; the real-HTTP behaviour is in tests/worker/)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from modelbus_adapter_worker.adapters import Completion, StreamDelta
from modelbus_adapter_worker.adapters.openai_chat import OpenAIChatAdapter
from modelbus_adapter_worker.errors import ProviderError, from_status, truncated
from modelbus_adapter_worker.executor import Executor
from modelbus_runtime.circuit import LocalBreaker
from modelbus_schemas import ModelRef, RetrySpec, RoutingDecision, Target, TaskEvent

NOW = datetime.now(UTC)
OK = Completion("hello", "stop", 10, 20, "gpt-4o-mini-2024")


def _task(**kw) -> TaskEvent:
    decision = RoutingDecision(policy_version="v1", route="t", strategy="single",
                               selected=[ModelRef(provider="openai", model="gpt-4o-mini")],
                               decided_at=NOW)
    return TaskEvent(event_id="r:task:0", request_id="r", task="t", part_id=0, parts_total=1,
                     provider="openai", model="gpt-4o-mini",
                     messages=[{"role": "user", "content": "hi"}], received_at=NOW,
                     decision=decision, **kw)


class ScriptedTransport:
    def __init__(self, *steps) -> None:
        self.steps, self.calls = list(steps), 0

    async def call(self, adapter, request, timeout_s, sink=None):
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        return step


class Breakers:
    """The in-process breaker behind the CircuitBreakers interface."""

    def __init__(self, threshold=2) -> None:
        self.local = LocalBreaker(threshold, 30, 60)

    async def allow(self, provider, model):
        return self.local.allow((provider, model))

    async def record(self, provider, model, ok):
        self.local.record((provider, model), ok)


def _executor(*steps, **kw) -> tuple[Executor, ScriptedTransport]:
    transport = ScriptedTransport(*steps)
    retry = RetrySpec(max_attempts=3, base_delay_ms=1, max_delay_ms=2)
    return Executor(OpenAIChatAdapter("k"), transport, default_retry=retry, **kw), transport


async def test_worker_executor_success_records_one_attempt():
    executor, transport = _executor(OK)
    run = await executor.run(_task())
    assert run.stop == "ok" and run.completion == OK and transport.calls == 1
    assert [(a.number, a.provider, a.model, a.outcome) for a in run.attempts] == [
        (1, "openai", "gpt-4o-mini", "ok")]


async def test_worker_executor_retries_retryable_then_succeeds():
    executor, transport = _executor(from_status(503, "busy"), from_status(429, "slow"), OK)
    run = await executor.run(_task())
    assert run.stop == "ok" and transport.calls == 3
    assert [a.status_code for a in run.attempts] == [503, 429, 200]


async def test_worker_executor_terminal_error_is_not_retried():
    executor, transport = _executor(from_status(400, "bad"))
    run = await executor.run(_task())
    assert run.stop == "terminal" and transport.calls == 1


async def test_worker_executor_retry_on_of_the_target_decides():
    executor, transport = _executor(from_status(503, "busy"), OK)
    run = await executor.run(_task(retry=RetrySpec(max_attempts=3, retry_on=[429])))
    assert run.stop == "terminal" and transport.calls == 1


async def test_worker_executor_attempt_budget_caps_retries():
    executor, transport = _executor(from_status(500, "x"))
    run = await executor.run(_task(attempt_budget=2))
    assert run.stop == "retries_exhausted" and transport.calls == 2
    spent = await executor.run(_task(attempt_budget=0))
    assert spent.stop == "budget" and transport.calls == 2


async def test_worker_executor_attempt_numbers_continue_the_history():
    executor, _ = _executor(OK)
    earlier = (await _executor(from_status(500, "x"))[0].run(_task())).attempts
    run = await executor.run(_task(attempt_history=earlier))
    assert run.attempts[0].number == len(earlier) + 1


async def test_worker_executor_fallback_status_stops_retrying_when_a_fallback_exists():
    executor, transport = _executor(from_status(429, "slow"), OK)
    task = _task(fallback_on=[429], fallbacks=[Target(provider="anthropic", model="c")])
    run = await executor.run(task)
    assert run.stop == "fallback_status" and transport.calls == 1


async def test_worker_executor_open_circuit_makes_no_call():
    breakers = Breakers(threshold=2)
    executor, transport = _executor(from_status(500, "x"), breakers=breakers)
    await executor.run(_task(retry=RetrySpec(max_attempts=2, base_delay_ms=1)))
    assert transport.calls == 2
    run = await executor.run(_task())
    assert run.stop == "circuit_open" and run.attempts == [] and transport.calls == 2


async def test_worker_executor_4xx_does_not_trip_the_breaker():
    breakers = Breakers(threshold=1)
    executor, transport = _executor(from_status(400, "bad"), breakers=breakers)
    await executor.run(_task())
    await executor.run(_task())
    assert transport.calls == 2


async def test_worker_executor_no_attempt_starts_after_the_deadline():
    executor, transport = _executor(OK)
    run = await executor.run(_task(deadline_at=NOW - timedelta(seconds=1)))
    assert run.stop == "deadline" and transport.calls == 0


async def test_worker_executor_retry_after_longer_than_the_deadline_gives_up():
    slow = ProviderError("HTTP 429", retryable=True, status_code=429, retry_after_s=30)
    executor, transport = _executor(slow, OK)
    run = await executor.run(_task(deadline_at=datetime.now(UTC) + timedelta(seconds=5)))
    assert run.stop == "retries_exhausted" and transport.calls == 1


class SlowTransport:
    """Every attempt times out when its time is up (the HTTP transport's behaviour)."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, adapter, request, timeout_s, sink=None):
        self.calls += 1
        await asyncio.sleep(timeout_s)
        raise ProviderError("timed out", retryable=True, code="timeout")


async def test_worker_executor_last_attempt_cut_by_the_deadline_reports_the_deadline():
    transport = SlowTransport()
    executor = Executor(OpenAIChatAdapter("k"), transport,
                        default_retry=RetrySpec(max_attempts=1, attempt_timeout_ms=5000))
    run = await executor.run(_task(deadline_at=datetime.now(UTC) + timedelta(milliseconds=50)))
    assert transport.calls == 1
    assert run.stop == "deadline" and run.error.code == "deadline_exceeded"
    assert "timed out" in str(run.error)  # the cause is kept


async def test_worker_executor_attempts_spent_before_the_deadline_are_retries_exhausted():
    failing = ProviderError("HTTP 503", retryable=True, status_code=503)
    executor, transport = _executor(failing)
    run = await executor.run(_task(deadline_at=datetime.now(UTC) + timedelta(seconds=30)))
    assert run.stop == "retries_exhausted" and transport.calls == 3


class Stats:
    def __init__(self) -> None:
        self.seen = []

    async def observe(self, provider, model, latency_ms, output_tokens):
        self.seen.append((provider, model, output_tokens))


async def test_worker_executor_feeds_model_stats_after_success():
    stats = Stats()
    executor, _ = _executor(OK, stats=stats)
    await executor.run(_task())
    assert stats.seen == [("openai", "gpt-4o-mini", 20)]


class StreamingTransport:
    """Each call hands the sink one delta, then fails as scripted (or completes)."""

    def __init__(self, *steps) -> None:
        self.steps, self.calls, self.streamed = list(steps), 0, []

    async def call(self, adapter, request, timeout_s, sink=None):
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        self.streamed.append(request.stream)
        if step == "fail_first":
            raise from_status(503, "busy")
        if sink is not None:
            await sink(StreamDelta("Hel"))
        if isinstance(step, Exception):
            raise step
        return step


async def test_worker_executor_streams_a_stream_task_and_stops_at_a_failure_after_a_delta():
    transport = StreamingTransport(truncated("no [DONE]"), OK)
    executor = Executor(OpenAIChatAdapter("k"), transport, stream=False,
                        default_retry=RetrySpec(max_attempts=3, base_delay_ms=1))
    got = []

    async def sink(delta):
        got.append(delta.text)

    run = await executor.run(_task(stream=True), sink)
    assert run.stop == "stream_interrupted" and transport.calls == 1
    assert run.error.code == "stream_interrupted" and "no [DONE]" in str(run.error)
    assert got == ["Hel"] and transport.streamed == [True]  # streamed though stream=False


async def test_worker_executor_retries_a_stream_that_failed_before_any_delta():
    transport = StreamingTransport("fail_first", OK)
    executor = Executor(OpenAIChatAdapter("k"), transport,
                        default_retry=RetrySpec(max_attempts=3, base_delay_ms=1))

    async def sink(delta):
        pass

    run = await executor.run(_task(stream=True), sink)
    assert run.stop == "ok" and transport.calls == 2
