"""A request's stored events as a lineage tree: request → routing decision → parts (task,
attempts, results) → response, plus dead letters and anything unrecognised.

A request is (tenant, request id): :func:`by_tenant` splits the rows of one request id by
tenant. Only genuine rows (no flag, see :mod:`modelbus_audit.identity`) become steps; a
conflicting copy, an unauthenticated or an undecodable record naming the request is listed
apart under ``flagged``, as evidence, never as the request, a task, a result or the response.

Pure functions over :class:`StoredEvent` lists; :mod:`modelbus_audit.render` prints the tree
and :meth:`Lineage.to_dict` gives the JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelbus_audit.stored import StoredEvent


@dataclass
class PartNode:
    """One provider call the router planned (``part_id``), and what became of it."""

    part_id: int
    provider: str | None = None
    model: str | None = None
    tasks: list[StoredEvent] = field(default_factory=list)
    results: list[StoredEvent] = field(default_factory=list)

    @property
    def attempts(self) -> list[dict[str, Any]]:
        out = []
        for result in self.results:
            attempts = (result.payload or {}).get("attempts")
            if isinstance(attempts, list):
                out += [a for a in attempts if isinstance(a, dict)]
        return out


@dataclass
class Lineage:
    request_id: str
    events: list[StoredEvent]
    tenant: str | None = None
    request: StoredEvent | None = None
    decision: dict[str, Any] | None = None
    parts: list[PartNode] = field(default_factory=list)
    responses: list[StoredEvent] = field(default_factory=list)
    dead_letters: list[StoredEvent] = field(default_factory=list)
    other: list[StoredEvent] = field(default_factory=list)
    flagged: list[StoredEvent] = field(default_factory=list)

    @property
    def total_cost_usd(self) -> float:
        if self.responses and self.responses[-1].cost_usd is not None:
            return self.responses[-1].cost_usd
        return sum(r.cost_usd or 0.0 for part in self.parts for r in part.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "request": event_summary(self.request) if self.request else None,
            "decision": self.decision,
            "parts": [
                {
                    "part_id": part.part_id,
                    "provider": part.provider,
                    "model": part.model,
                    "tasks": [event_summary(e) for e in part.tasks],
                    "attempts": part.attempts,
                    "results": [event_summary(e) for e in part.results],
                }
                for part in self.parts
            ],
            "responses": [event_summary(e) for e in self.responses],
            "dead_letters": [event_summary(e) for e in self.dead_letters],
            "other": [event_summary(e) for e in self.other],
            "flagged": [event_summary(e) for e in self.flagged],
            "total_cost_usd": self.total_cost_usd,
            "events": len(self.events),
        }


def build_lineage(request_id: str, events: list[StoredEvent],
                  tenant: str | None = None) -> Lineage:
    events = sorted(events, key=StoredEvent.sort_key)
    if tenant is None:
        tenants = {e.tenant for e in events if e.tenant is not None}
        tenant = next(iter(tenants)) if len(tenants) == 1 else None
    lineage = Lineage(request_id=request_id, events=events, tenant=tenant)
    parts: dict[int, PartNode] = {}
    for event in events:
        if not event.genuine:
            lineage.flagged.append(event)
        elif event.kind == "request" and lineage.request is None:
            lineage.request = event
        elif event.kind in ("task", "result") and event.part_id is not None:
            part = parts.setdefault(event.part_id, PartNode(event.part_id))
            part.provider = part.provider or event.provider
            part.model = part.model or event.model
            (part.tasks if event.kind == "task" else part.results).append(event)
            if event.kind == "task" and lineage.decision is None:
                lineage.decision = _decision(event)
        elif event.kind == "response":
            lineage.responses.append(event)
        elif event.kind == "dead_letter":
            lineage.dead_letters.append(event)
        else:
            lineage.other.append(event)
    lineage.parts = [parts[key] for key in sorted(parts)]
    return lineage


def by_tenant(request_id: str, events: list[StoredEvent]) -> list[Lineage]:
    """One lineage per tenant with genuine rows for ``request_id`` (a single one when at most
    one tenant has); rows of no such tenant (no tenant, or flagged rows naming another one:
    a forged record does not make a request id ambiguous) go with every tenant's lineage."""
    named = {e.tenant for e in events if e.tenant is not None and e.genuine}
    tenants = sorted(named or {e.tenant for e in events if e.tenant is not None})
    if len(tenants) <= 1:
        return [build_lineage(request_id, events, tenants[0] if tenants else None)]
    loose = [e for e in events if e.tenant not in tenants]
    return [build_lineage(request_id, [e for e in events if e.tenant == t] + loose, t)
            for t in tenants]


def not_streamed(decision: dict[str, Any]) -> str | None:
    """Why a request that asked to stream did not (the router's ``stream`` finding)."""
    for finding in decision.get("guardrails") or []:
        if isinstance(finding, dict) and finding.get("guard") == "stream":
            return str(finding.get("detail") or "not streamed")
    return None


def _decision(task: StoredEvent) -> dict[str, Any] | None:
    decision = (task.payload or {}).get("decision")
    return decision if isinstance(decision, dict) else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_summary(event: StoredEvent) -> dict[str, Any]:
    """The fields a reader of one lineage step needs; None-valued fields left out."""
    summary = {
        "row_id": event.id,
        "event_id": event.event_id,
        "identity": event.identity,
        "flags": event.flags,
        "signed_by": event.signed_by,
        "auth_error": event.auth_error,
        "kind": event.kind,
        "event_time": _iso(event.event_time),
        "topic": event.topic,
        "partition": event.kafka_partition,
        "offset": event.kafka_offset,
        "tenant": event.tenant,
        "team": event.team,
        "user": event.caller_user,
        "task": event.task,
        "part_id": event.part_id,
        "provider": event.provider,
        "model": event.model,
        "data_class": event.data_class,
        "status": event.status,
        "cost_usd": event.cost_usd,
        "policy_version": event.policy_version,
        "error_code": event.error_code,
        "dlq_reason": event.dlq_reason,
        "dlq_source_topic": event.dlq_source_topic,
        "dlq_error": event.dlq_error,
        "body_excerpt": event.body_excerpt,
        "latency_ms": (event.payload or {}).get("latency_ms"),
        "ttft_ms": (event.payload or {}).get("ttft_ms"),
        "stream_events": (event.payload or {}).get("stream_events") or None,
    }
    return {key: value for key, value in summary.items() if value is not None}
