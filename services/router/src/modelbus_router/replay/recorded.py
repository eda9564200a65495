"""A recorded request as replay sees it: the request, and what happened to it then.

Built from audit rows (:mod:`modelbus_router.replay.audit_source`) or from a record of the
requests topic (no "then" beyond what the audit adds). Text the audit redacted (``[EMAIL]``
placeholders, ``sha256:`` digests) replays as stored; a request whose text retention purged
replays with its metadata (task, caller, data class) and filler text of the size its
recorded decision estimated, so routing by size still sees a request of that size. Both are
counted in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelbus_runtime.pii import KINDS
from modelbus_schemas import RequestEvent
from pydantic import ValidationError

_PLACEHOLDER = re.compile(r"\[(" + "|".join(k.upper() for k in KINDS) + r")\]|^sha256:[0-9a-f]{64}$")
FILLER_WORD = "a "  # one o200k token per repetition


@dataclass(frozen=True)
class ResultUsage:
    """One provider result recorded for the request."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class Then:
    """What the router and the providers did with the request when it was served."""

    outcome: str  # served | refused | parked | unknown (no decision or answer recorded)
    policy_version: str | None = None
    strategy: str | None = None
    selected: tuple[str, ...] = ()
    error_code: str | None = None
    estimated_input_tokens: int | None = None
    usage: tuple[ResultUsage, ...] = ()

    @property
    def cost_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage)


@dataclass(frozen=True)
class Recorded:
    request: RequestEvent
    then: Then = field(default_factory=lambda: Then("unknown"))
    redacted: bool = False
    purged: bool = False
    at: datetime | None = None  # when it was recorded (budgets and quotas are simulated by it)

    @property
    def team(self) -> str:
        return self.request.caller.team or "(none)"


def is_redacted(payload: dict[str, Any]) -> bool:
    texts = [m.get("content") for m in payload.get("messages") or [] if isinstance(m, dict)]
    texts += [c.get("content") for c in payload.get("context") or [] if isinstance(c, dict)]
    return any(isinstance(t, str) and _PLACEHOLDER.search(t) for t in texts)


def then_of(rows: list[Any]) -> Then:
    """The outcome recorded in a request's task, result and response rows (any order)."""
    rows = sorted(rows, key=lambda r: (r.event_time, r.part_id or 0))
    decision = next((r.payload["decision"] for r in rows if r.kind == "task" and r.payload
                     and isinstance(r.payload.get("decision"), dict)), None)
    usage = tuple(ResultUsage(r.provider or "", r.model or "", r.input_tokens or 0,
                        r.output_tokens or 0, r.cost_usd or 0.0)
                  for r in rows if r.kind == "result" and r.model)
    response = next((r for r in rows if r.kind == "response"), None)
    task = next((r for r in rows if r.kind == "task"), None)
    if decision is None and task is not None:  # purged text: the columns still tell the model
        decision = {"policy_version": task.policy_version,
                    "selected": [{"provider": task.provider, "model": task.model}]}
    if decision is not None:
        outcome = "served"
    elif response is not None and response.status == "error":
        outcome = "refused"
    else:
        outcome = "unknown"
    return Then(
        outcome=outcome,
        policy_version=(decision or {}).get("policy_version") or (
            response.policy_version if response is not None else None),
        strategy=(decision or {}).get("strategy"),
        selected=tuple(f"{m['provider']}/{m['model']}"
                       for m in (decision or {}).get("selected") or []),
        error_code=response.error_code if response is not None and outcome == "refused" else None,
        estimated_input_tokens=(decision or {}).get("estimated_input_tokens"),
        usage=usage,
    )


def request_of(row: Any, then: Then) -> tuple[RequestEvent | None, bool, bool]:
    """The request of an audit ``request`` row: (request, redacted, purged); ``None`` when
    the row holds neither a valid request nor the metadata to stand in for one."""
    payload = row.payload
    if isinstance(payload, dict):
        try:
            return RequestEvent.model_validate(payload), is_redacted(payload), False
        except ValidationError:
            if row.purged_at is None:
                return None, False, False
    if row.purged_at is None or not row.task or not row.request_id:
        return None, False, False
    words = max(1, (then.estimated_input_tokens or 8) - 6)  # chat framing: 3 + 3 tokens
    try:
        request = RequestEvent(
            request_id=row.request_id, task=row.task,
            messages=[{"role": "user", "content": (FILLER_WORD * words).strip()}],
            caller={"tenant": row.tenant or "default", "team": row.team, "user": row.caller_user},
            data_class=row.data_class or "internal",
        )
    except ValidationError:
        return None, False, True
    return request, False, True
