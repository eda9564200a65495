"""A request's lineage as a flat, time-ordered list of steps, for the API and the compliance page.

Each step says when, what kind (request, routing, task, attempt, result, response,
dead_letter, other, flagged), a one-line title and its details; flagged rows (conflicting
copies, unauthenticated or undecodable records) are shown as such, never as the step they claim. Routing and attempts have no row of
their own: they come from a task's ``decision`` and a result's ``attempts``. Pure functions over
:class:`modelbus_audit.lineage.Lineage`; nothing here reads prompt or response text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelbus_audit.lineage import Lineage, not_streamed
from modelbus_audit.stored import StoredEvent


@dataclass
class Step:
    time: str | None
    kind: str
    title: str
    status: str | None = None
    part_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def build_timeline(lineage: Lineage) -> list[dict[str, Any]]:
    steps: list[Step] = []
    if lineage.request:
        r = lineage.request
        steps.append(Step(_iso(r.event_time), "request", f"request received: task {r.task}",
                          details=_who(r)))
    if lineage.decision:
        steps.append(_routing(lineage.decision))
    for part in lineage.parts:
        for task in part.tasks:
            steps.append(Step(_iso(task.event_time), "task",
                              f"task to {task.provider}/{task.model}", part_id=part.part_id,
                              details={"topic": task.topic, "event_id": task.event_id}))
        for attempt in part.attempts:
            steps.append(_attempt(attempt, part.part_id))
        for result in part.results:
            steps.append(Step(
                _iso(result.event_time), "result",
                f"result from {result.provider}/{result.model}: {result.status}",
                status=result.status, part_id=part.part_id, details=_usage(result),
            ))
    for response in lineage.responses:
        steps.append(Step(_iso(response.event_time), "response", f"response: {response.status}",
                          status=response.status, details=_usage(response)))
    for dead in lineage.dead_letters:
        steps.append(Step(
            _iso(dead.event_time), "dead_letter", f"dead letter from {dead.dlq_source_topic}",
            status="dead_letter", details={"reason": dead.dlq_reason, "error": dead.dlq_error},
        ))
    for other in lineage.other:
        steps.append(Step(_iso(other.event_time), other.kind, f"{other.kind} on {other.topic}"))
    for odd in lineage.flagged:
        steps.append(Step(
            _iso(odd.event_time), "flagged",
            f"flagged {odd.flags}: {odd.kind} on {odd.topic} (not a step of this request)",
            status=odd.flags, part_id=odd.part_id,
            details={"event_id": odd.event_id, "topic": odd.topic,
                     "partition": odd.kafka_partition, "offset": odd.kafka_offset,
                     "auth_error": odd.auth_error},
        ))
    ordered = sorted(enumerate(steps), key=lambda pair: (_moment(pair[1].time), pair[0]))
    return [_clean(asdict(step)) for _, step in ordered]


def _routing(decision: dict[str, Any]) -> Step:
    selected = [f"{r.get('provider')}/{r.get('model')}" for r in decision.get("selected") or []
                if isinstance(r, dict)]
    rejected = [
        {"model": f"{r.get('provider')}/{r.get('model')}", "reason": r.get("reason")}
        for r in decision.get("rejected") or [] if isinstance(r, dict)
    ]
    return Step(
        decision.get("decided_at") if isinstance(decision.get("decided_at"), str) else None,
        "routing",
        f"routed by policy {decision.get('policy_version')} ({decision.get('strategy')})",
        details={"policy_version": decision.get("policy_version"), "route": decision.get("route"),
                 "matched_rule": decision.get("matched_rule"), "selected": selected,
                 "rejected": rejected, "not_streamed": not_streamed(decision)},
    )


def _attempt(attempt: dict[str, Any], part_id: int) -> Step:
    code = attempt.get("status_code")
    where = "/".join(str(x) for x in (attempt.get("provider"), attempt.get("model")) if x)
    title = f"attempt {attempt.get('number')}{' on ' + where if where else ''}: " \
            f"{attempt.get('outcome')} (HTTP {code if code is not None else '-'})"
    started = attempt.get("started_at")
    return Step(
        started if isinstance(started, str) else None, "attempt", title,
        status=attempt.get("outcome"), part_id=part_id,
        details={"latency_ms": attempt.get("latency_ms"), "error_code": attempt.get("error_code")},
    )


def _who(event: StoredEvent) -> dict[str, Any]:
    return {"tenant": event.tenant, "team": event.team, "user": event.caller_user,
            "data_class": event.data_class}


def _usage(event: StoredEvent) -> dict[str, Any]:
    return {"cost_usd": event.cost_usd, "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens, "latency_ms": (event.payload or {}).get(
                "latency_ms"), "error_code": event.error_code,
            "policy_version": event.policy_version, **_stream(event)}


def _stream(event: StoredEvent) -> dict[str, Any]:
    """Time to first token and stream events of a result or response that has them."""
    payload = event.payload or {}
    return {"ttft_ms": payload.get("ttft_ms"), "stream_events": payload.get("stream_events") or None}


def _moment(text: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(text) if text else datetime.max
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _clean(step: dict[str, Any]) -> dict[str, Any]:
    step["details"] = {k: v for k, v in step["details"].items() if v not in (None, [], "")}
    return {k: v for k, v in step.items() if v is not None}
