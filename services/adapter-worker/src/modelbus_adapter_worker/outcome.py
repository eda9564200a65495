"""What a finished target run becomes: a canonical :class:`ResultEvent`, or — when the
target is exhausted and the plan has another — the same part forwarded to the next target.

Fallback rule: a target is exhausted when its retries are used up, its circuit is open, or
it failed with a status in ``task.fallback_on``. A terminal error (a 4xx other than
408/409/429) falls back only when its status is in ``fallback_on``. Nothing falls back past
the request's deadline or attempt budget, nor past a settled request, nor after a streamed
answer had begun to leave (``stream_interrupted``). The forwarded task's id is
``TaskEvent.make_id(scope, part_id, plan.step, hop)`` with ``hop`` the number of targets
already tried for the part, so a redelivered task forwards under the same id.

Identity is (tenant, request id): ``scope`` is :func:`scope_of` (the task's
:func:`~modelbus_schemas.identity.scoped_id`), the result carries the task's tenant, and
every id made here (forwarded task, result, idempotency key) is built from it, so two
tenants that picked the same request id never share one.
"""

from __future__ import annotations

from modelbus_schemas import ErrorCode, ErrorInfo, ResultEvent, TaskEvent, Usage
from modelbus_schemas.identity import scoped_id

from modelbus_adapter_worker.answer import finish
from modelbus_adapter_worker.executor import TargetRun
from modelbus_adapter_worker.pricing import cost_usd

_CODES = {
    "terminal": ErrorCode.PROVIDER_TERMINAL,
    "retries_exhausted": ErrorCode.RETRIES_EXHAUSTED,
    "fallback_status": ErrorCode.RETRIES_EXHAUSTED,
    "budget": ErrorCode.RETRIES_EXHAUSTED,
    "circuit_open": ErrorCode.PROVIDER_UNAVAILABLE,
    "deadline": ErrorCode.DEADLINE_EXCEEDED,
    "stream_interrupted": ErrorCode.STREAM_INTERRUPTED,
}
# Terminal errors found before any provider call: the request, not the provider, is at fault.
_REQUEST_CODES = {"invalid_request", "blob_missing", "blob_tampered", "unsupported_operation"}


def falls_back(task: TaskEvent, run: TargetRun) -> bool:
    if not task.fallbacks or run.stop in ("ok", "deadline", "budget", "settled",
                                               "stream_interrupted"):
        return False
    status = run.error.status_code if run.error else None
    if run.stop == "terminal":
        return status is not None and status in (task.fallback_on or ())
    return True  # retries used up, circuit open, or a status in fallback_on


def scope_of(task: TaskEvent) -> str:
    """The request's identity inside modelbus: (tenant, request id), unambiguously encoded."""
    return scoped_id(task.tenant, task.request_id)


def hop_of(task: TaskEvent) -> int:
    """How many targets were tried for this part before this one (read from the task's id,
    which the router and earlier workers made with ``TaskEvent.make_id``; an id of another
    form: the distinct targets in the attempt history)."""
    base = f"{scope_of(task)}:task:{task.part_id}"
    rest = task.event_id[len(base):] if task.event_id.startswith(base) else None
    if rest and not rest.startswith(":"):
        rest = None
    pieces = rest.split(":")[1:] if rest else []
    if rest is not None and len(pieces) in (0, 1, 2) and all(p.isdigit() for p in pieces):
        return int(pieces[1]) if len(pieces) == 2 else 0
    return len({(a.provider, a.model) for a in task.attempt_history})


def position_id(task: TaskEvent) -> str:
    """The id the task has by its plan position (tenant, request id, part, step, hop),
    derived from its fields rather than taken from its ``event_id`` as sent."""
    return TaskEvent.make_id(scope_of(task), task.part_id, task.plan.step, hop_of(task))


def next_task(task: TaskEvent, run: TargetRun) -> TaskEvent:
    target, rest = task.fallbacks[0], task.fallbacks[1:]
    budget = task.attempt_budget
    if budget is not None:
        budget = max(0, budget - len(run.attempts))
    return task.model_copy(update={
        "event_id": TaskEvent.make_id(scope_of(task), task.part_id, task.plan.step,
                                      hop_of(task) + 1),
        "provider": target.provider,
        "model": target.model,
        "retry": target.retry,
        "fallbacks": rest,
        "attempt_history": [*task.attempt_history, *run.attempts],
        "attempt_budget": budget,
    })


def should_forward(task: TaskEvent, run: TargetRun) -> bool:
    if not falls_back(task, run):
        return False
    return task.attempt_budget is None or task.attempt_budget - len(run.attempts) > 0


def needs_origin(task: TaskEvent) -> bool:
    plan = task.plan
    if plan.mode in ("cascade", "chain"):
        return True
    return plan.mode == "ensemble" and plan.ensemble is not None and (
        plan.ensemble.strategy == "judge")


def result_of(task: TaskEvent, run: TargetRun) -> ResultEvent:
    base = dict(  # noqa: C408 - keyword form reads as the event's fields
        event_id=ResultEvent.make_id(scope_of(task), task.part_id, task.plan.step),
        request_id=task.request_id, tenant=task.tenant, task=task.task, part_id=task.part_id,
        parts_total=task.parts_total, provider=task.provider, model=task.model,
        reply_to=task.reply_to, received_at=task.received_at, deadline_at=task.deadline_at,
        policy_version=task.decision.policy_version, plan=task.plan,
        budget_hold=task.budget_hold, cache_key=task.decision.cache_key,
        origin=task if needs_origin(task) else None,
        attempts=[*task.attempt_history, *run.attempts], latency_ms=run.latency_ms,
    )
    if run.stop == "ok" and run.completion is not None:
        c, parsed, invalid = finish(task, run.completion)
        spent = dict(  # noqa: C408
            response_model=c.response_model, ttft_ms=c.ttft_ms,
            usage=Usage(input_tokens=c.input_tokens, output_tokens=c.output_tokens),
            cost_usd=cost_usd(task.model, c.input_tokens, c.output_tokens))
        if invalid is not None:  # paid for, but not the answer asked for
            return ResultEvent(**base, **spent, status="error", finish_reason="error",
                               text=c.text, error=invalid)
        embed = task.operation == "embed"
        return ResultEvent(
            **base, **spent, status="ok", text=None if embed else c.text,
            finish_reason=c.finish_reason, tool_calls=c.tool_calls, parsed=parsed,
            embeddings=c.embeddings if embed else None,
        )
    error = run.error
    message = str(error) if error else run.stop
    if run.stop == "retries_exhausted" and run.attempts:
        message = f"{len(run.attempts)} attempt(s) failed; last: {message}"
    code = _CODES.get(run.stop, ErrorCode.INTERNAL)
    if run.stop == "terminal" and error is not None and error.code in _REQUEST_CODES:
        code = ErrorCode.INVALID_REQUEST
    return ResultEvent(
        **base, status="error", finish_reason="error",
        error=ErrorInfo(code=code, message=message[:4000],
                        retryable=run.stop in ("retries_exhausted", "circuit_open")),
    )
