"""The tasks the aggregator publishes itself: next cascade tier, next chain stage, judges.

Each is built from the task a result answers (``ResultEvent.origin``), so it keeps the
request's caller (so its tenant), params, decision, reply topic, deadline and budget hold.
Ids are deterministic (``TaskEvent.make_id`` over the request's (tenant, request id) scope),
so a redelivered result republishes the same event, and two tenants' tasks never share one.

Part id / step convention:

* cascade tier ``t`` and chain stage ``s``: part 0, step ``t`` / ``s``; a chain stage
  retried after a failure keeps its step and counts ``hop`` 1, 2, …;
* a judge is the part one past the plan's parts: ``part_id = parts_total`` (so
  ``part_id >= parts_total`` marks a judge verdict), and ``step`` is the step it judges —
  0 for an ensemble, the tier for a cascade ``judge`` check.

Streaming: of the tasks published here, only a streaming chain's last stage streams
(``TaskEvent.stream``; its retry hops too). Cascade tiers, judges and output repairs never
do: the router streams no cascade, and a route whose output is repaired has an output guard,
which keeps its plan from streaming (``modelbus_router.streaming``).
"""

from __future__ import annotations

from modelbus_schemas import ChatMessage, ExecutionPlan, ResultEvent, Target, TaskEvent
from modelbus_schemas.identity import scoped_id


def task_scope(task: TaskEvent) -> str:
    return scoped_id(task.tenant, task.request_id)


def is_judge_verdict(result: ResultEvent) -> bool:
    return result.part_id >= result.parts_total


def hop_of(task: TaskEvent, max_hops: int) -> int:
    """Which retry hop a task is (0 for the first run), recognised by its deterministic id."""
    for hop in range(max_hops + 1):
        if task.event_id == TaskEvent.make_id(task_scope(task), task.part_id, task.plan.step, hop):
            return hop
    return 0


def streams(plan: ExecutionPlan, step: int, part_id: int) -> bool:
    """Whether the task at (part, step) of ``plan`` streams: the last stage of a streaming
    chain, nothing else."""
    return (plan.stream and plan.mode == "chain" and part_id == 0
            and step == len(plan.chain or ()) - 1)


def step_task(
    origin: TaskEvent,
    *,
    target: Target,
    step: int,
    messages: list[ChatMessage] | None = None,
    part_id: int | None = None,
    hop: int = 0,
) -> TaskEvent:
    """The task for plan position (part, step, hop), derived from ``origin``."""
    part = origin.part_id if part_id is None else part_id
    return origin.model_copy(update={
        "event_id": TaskEvent.make_id(task_scope(origin), part, step, hop),
        "part_id": part,
        "provider": target.provider,
        "model": target.model,
        "messages": messages if messages is not None else origin.messages,
        "plan": origin.plan.model_copy(update={"step": step}),
        "stream": streams(origin.plan, step, part),
        "retry": target.retry,
        "fallbacks": [],
        "fallback_on": None,
        "attempt_history": [],
    })


def judge_task(origin: TaskEvent, *, judge: Target, step: int,
               messages: list[ChatMessage]) -> TaskEvent:
    return step_task(origin, target=judge, step=step, messages=messages,
                     part_id=origin.parts_total)
