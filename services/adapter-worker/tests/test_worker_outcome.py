"""What a target run becomes: the result's copied fields, ``origin`` for plans whose next
step needs it, and the fallback rules (which failures forward, the next task's id, history
and budget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.errors import ProviderError, from_status
from modelbus_adapter_worker.executor import TargetRun
from modelbus_adapter_worker.outcome import hop_of, next_task, result_of, should_forward
from modelbus_schemas import (
    AttemptRecord,
    BudgetHold,
    EnsembleSpec,
    ExecutionPlan,
    ModelRef,
    RetrySpec,
    RoutingDecision,
    Target,
    TaskEvent,
)
from modelbus_schemas.identity import scoped_id

NOW = datetime.now(UTC)
SCOPE = scoped_id("default", "r1")  # the tenant of a task without a caller
ATTEMPT = AttemptRecord(number=1, provider="openai", model="gpt-4o", started_at=NOW,
                        latency_ms=5, status_code=503, outcome="error", error_code="http_503")
BACKUPS = [Target(provider="anthropic", model="claude-haiku-4-5",
                  retry=RetrySpec(max_attempts=2)),
           Target(provider="gemini", model="gemini-2.5-flash")]


def _task(**kw) -> TaskEvent:
    decision = RoutingDecision(policy_version="v7", route="t", strategy="single",
                               selected=[ModelRef(provider="openai", model="gpt-4o")],
                               decided_at=NOW, cache_key="ck-1")
    kw.setdefault("event_id", TaskEvent.make_id(SCOPE, 2, kw.get("plan", ExecutionPlan()).step))
    return TaskEvent(request_id="r1", task="t", part_id=2, parts_total=3,
                     provider="openai", model="gpt-4o", messages=[{"role": "user", "content": "q"}],
                     received_at=NOW, decision=decision, **kw)


def _failed(stop="retries_exhausted", error=None, attempts=1) -> TargetRun:
    return TargetRun(stop, error=error or from_status(503, "busy"),
                     attempts=[ATTEMPT] * attempts, latency_ms=12)


def test_worker_result_copies_plan_hold_cache_key_deadline_and_history():
    hold = BudgetHold(hold_id="h1", scope="team:x", reserved_usd=0.5)
    deadline = NOW + timedelta(seconds=30)
    plan = ExecutionPlan(mode="cascade", step=1)
    task = _task(plan=plan, budget_hold=hold, deadline_at=deadline, attempt_history=[ATTEMPT])
    run = TargetRun("ok", completion=Completion("A", "stop", 1000, 2000, "gpt-4o-x", 12.5),
                    attempts=[ATTEMPT], latency_ms=40)
    result = result_of(task, run)
    assert result.event_id == f"{SCOPE}:result:2:1" and result.status == "ok"
    assert (result.plan, result.budget_hold, result.cache_key, result.deadline_at) == (
        plan, hold, "ck-1", deadline)
    assert result.origin == task and result.ttft_ms == 12.5
    assert result.attempts == [ATTEMPT, ATTEMPT]
    assert result.cost_usd == (1000 * 2.5 + 2000 * 10.0) / 1e6


def test_worker_origin_only_for_cascade_chain_and_judge():
    run = _failed()
    assert result_of(_task(), run).origin is None
    judge = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="judge"))
    assert result_of(_task(plan=judge), run).origin is not None
    vote = ExecutionPlan(mode="ensemble", ensemble=EnsembleSpec(strategy="majority"))
    assert result_of(_task(plan=vote), run).origin is None
    assert result_of(_task(plan=ExecutionPlan(mode="chain")), run).origin is not None


def test_worker_error_codes_by_stop_reason():
    codes = {stop: result_of(_task(), _failed(stop)).error.code
             for stop in ("terminal", "retries_exhausted", "circuit_open", "deadline")}
    assert codes == {"terminal": "provider_terminal", "retries_exhausted": "retries_exhausted",
                     "circuit_open": "provider_unavailable", "deadline": "deadline_exceeded"}


def test_worker_exhausted_target_forwards_to_the_next_with_history_and_budget():
    task = _task(fallbacks=BACKUPS, attempt_budget=5, attempt_history=[ATTEMPT])
    run = _failed(attempts=3)
    assert should_forward(task, run)
    nxt = next_task(task, run)
    assert nxt.event_id == TaskEvent.make_id(SCOPE, 2, 0, 1) == f"{SCOPE}:task:2:0:1"
    assert (nxt.provider, nxt.model, nxt.retry) == ("anthropic", "claude-haiku-4-5",
                                                   BACKUPS[0].retry)
    assert nxt.fallbacks == BACKUPS[1:] and nxt.attempt_budget == 2
    assert len(nxt.attempt_history) == 4 and nxt.part_id == 2
    assert hop_of(nxt) == 1 and next_task(nxt, _failed()).event_id == f"{SCOPE}:task:2:0:2"


def test_worker_circuit_open_forwards_terminal_does_not_unless_listed():
    task = _task(fallbacks=BACKUPS)
    assert should_forward(task, _failed("circuit_open", attempts=0))
    assert not should_forward(task, _failed("terminal", from_status(400, "bad")))
    listed = _task(fallbacks=BACKUPS, fallback_on=[400, 429])
    assert should_forward(listed, _failed("terminal", from_status(400, "bad")))


def test_worker_no_forward_without_fallbacks_budget_or_time():
    assert not should_forward(_task(), _failed())
    assert not should_forward(_task(fallbacks=BACKUPS, attempt_budget=1), _failed())
    deadline = ProviderError("late", retryable=False, code="deadline_exceeded")
    assert not should_forward(_task(fallbacks=BACKUPS), _failed("deadline", deadline))


def test_worker_forward_id_is_deterministic_under_cascade_steps():
    task = _task(plan=ExecutionPlan(mode="cascade", step=2), fallbacks=BACKUPS)
    assert task.event_id == f"{SCOPE}:task:2:2" and hop_of(task) == 0
    assert next_task(task, _failed()).event_id == f"{SCOPE}:task:2:2:1"


def test_worker_streamed_task_keeps_stream_on_fallback_and_never_falls_back_mid_stream():
    task = _task(fallbacks=BACKUPS, stream=True, fallback_on=[503])
    assert next_task(task, _failed()).stream is True
    broken = ProviderError("stream broke", retryable=False, code="stream_interrupted",
                           status_code=503)
    run = _failed("stream_interrupted", broken)
    assert not should_forward(task, run)
    assert result_of(task, run).error.code == "stream_interrupted"
