"""Factories for the aggregator's unit tests: results and tasks as the router and worker
make them (ids scoped by (tenant, request id); the tenant is ``default`` unless given)."""

from __future__ import annotations

from datetime import UTC, datetime

from modelbus_schemas import (
    Caller,
    ChatMessage,
    ExecutionPlan,
    ModelRef,
    ResultEvent,
    RoutingDecision,
    TaskEvent,
    Usage,
)
from modelbus_schemas.identity import scoped_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_task(rid: str = "r", part: int = 0, total: int = 1, plan: ExecutionPlan | None = None,
              model: str | None = None, text: str = "What is Kafka?", tenant: str = "default",
              **kw) -> TaskEvent:
    plan = plan or ExecutionPlan()
    model = model or f"m{part}"
    decision = RoutingDecision(
        policy_version="v7", route="t", strategy=plan.mode, decided_at=T0,
        selected=[ModelRef(provider="openai", model=f"m{i}") for i in range(total)])
    return TaskEvent(
        event_id=TaskEvent.make_id(scoped_id(tenant, rid), part, plan.step), request_id=rid,
        caller=Caller(tenant=tenant), task="t",
        part_id=part, parts_total=total, provider="openai", model=model,
        messages=[ChatMessage(role="user", content=text)], received_at=T0, decision=decision,
        plan=plan, **kw)


def make_result(rid: str = "r", part: int = 0, total: int = 1, status: str = "ok",
                text: str | None = None, plan: ExecutionPlan | None = None,
                origin: TaskEvent | None | bool = True, model: str | None = None,
                tenant: str = "default", **kw) -> ResultEvent:
    plan = plan or ExecutionPlan()
    model = model or f"m{part}"
    if origin is True:
        origin = make_task(rid, part, total, plan, model=model, tenant=tenant)
    if status == "ok" and text is None:
        text = f"answer {part}"
    if status == "error" and "error" not in kw:
        kw["error"] = {"code": "retries_exhausted", "message": "503 x3"}
    return ResultEvent(
        event_id=ResultEvent.make_id(scoped_id(tenant, rid), part, plan.step), request_id=rid,
        tenant=tenant, task="t",
        part_id=part, parts_total=total, provider="openai", model=model, status=status,
        text=text, received_at=kw.pop("received_at", T0), policy_version="v7", plan=plan,
        origin=origin or None, usage=kw.pop("usage", Usage(input_tokens=3, output_tokens=2)),
        cost_usd=kw.pop("cost_usd", 0.001), **kw)


class RecordingOutbox:
    """The aggregator's outbox as unit tests see it: keeps what would be published, and says
    a response was published once one with its event id was."""

    def __init__(self) -> None:
        self.tasks, self.responses = [], []

    async def publish_task(self, task, trace):
        self.tasks.append(task)

    async def was_published(self, topic, response, since_ms):
        return any(r.event_id == response.event_id for r in self.responses)

    async def publish_response(self, topic, response, trace):
        self.responses.append(response)
