"""Builds the one response of a request from its results. Knows nothing of Kafka.

The response carries the output and why its model stopped (``finish_reason``), the status
(``ok`` / ``partial`` / ``error``), the models whose answer is the output, a summary of
every part and step (judges included), summed tokens and cost, latency since the router
received the request, the policy version, the cascade/chain path and the parts still
missing when it was sent. It is the response of (tenant, request id): it carries the
tenant and its id is built from the scoped id, so two tenants' responses to one request id
are two events.

Streaming: ``stream_events`` is the sum over the request's results (the stream events the
workers published for it), and ``ttft_ms`` the time to first output of the answering call
(:func:`ttft`). A streamed answer that broke (``stream_interrupted``) is an error response
with that code, like any other error result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from modelbus_schemas import ErrorInfo, PartSummary, ResponseEvent, ResultEvent, Usage
from modelbus_schemas.events import FinishReason
from modelbus_schemas.identity import scoped_id

from modelbus_aggregator.strategies import label


def summarize(result: ResultEvent) -> PartSummary:
    return PartSummary(
        part_id=result.part_id, provider=result.provider, model=result.model,
        status=result.status, step=result.plan.step, latency_ms=result.latency_ms,
        cost_usd=result.cost_usd, error_code=result.error.code.value if result.error else None,
    )


def missing_summary(part_id: int, provider: str, model: str, step: int = 0) -> PartSummary:
    return PartSummary(part_id=part_id, provider=provider, model=model, status="missing",
                       step=step)


def finish_reason(output: str | None, answered: list[ResultEvent]) -> FinishReason | None:
    """Why the model behind the output stopped: the reason of the results whose text *is* the
    output (of every answered result when the output is a blend of them). One reason: that
    one; several: ``length`` if any answer was cut at the token limit, else unknown."""
    if output is None:
        return None
    producers = [r for r in answered if r.text == output] or list(answered)
    reasons = {r.finish_reason for r in producers if r.finish_reason}
    if len(reasons) == 1:
        return reasons.pop()
    return "length" if "length" in reasons else None


def _structured(output: str | None, answered: list[ResultEvent]) -> dict:
    """Tool calls, parsed JSON and vectors of the answer: those of the result(s) whose
    answer *is* the output (a blend of several answers, as ``all`` makes, has none)."""
    producers = [r for r in answered if r.text == output]
    if not producers:
        return {}
    first = producers[0]
    return {"tool_calls": first.tool_calls, "parsed": first.parsed,
            "embeddings": first.embeddings}


def ttft(output: str | None, answered: list[ResultEvent],
         results: list[ResultEvent]) -> float | None:
    """Time to first output of the call whose answer is the output (the latest such result:
    a chain's last stage); with no answer, that of the latest result that streamed (what
    the caller saw of a broken stream). None for a blend of several answers."""
    producers = [r for r in answered if r.text == output]
    if not producers and not answered:
        producers = [r for r in results if r.stream_events]
    return producers[-1].ttft_ms if producers else None


def _finish(output: str | None, answered: list[ResultEvent], structured: dict):
    if output is None and structured.get("tool_calls"):
        return "tool_calls"
    if output is None and structured.get("embeddings") is not None:
        return "stop"
    return finish_reason(output, answered)


def build_response(
    results: list[ResultEvent],
    *,
    status: Literal["ok", "partial", "error"],
    output: str | None = None,
    answered: list[ResultEvent] = (),
    error: ErrorInfo | None = None,
    missing: list[PartSummary] = (),
    path: list[str] = (),
    now: datetime | None = None,
) -> ResponseEvent:
    now = now or datetime.now(UTC)
    ordered = sorted(results, key=lambda r: (r.plan.step, r.part_id))
    first = ordered[0]
    usage = Usage()
    for r in ordered:
        usage = usage + r.usage
    models = list(dict.fromkeys(label(r) for r in answered))
    structured = _structured(output, list(answered))
    return ResponseEvent(
        event_id=ResponseEvent.make_id(scoped_id(first.tenant, first.request_id)),
        request_id=first.request_id,
        tenant=first.tenant,
        task=first.task,
        status=status,
        output=output,
        **structured,
        finish_reason=_finish(output, list(answered), structured),
        error=error,
        models=models,
        parts=sorted([summarize(r) for r in ordered] + list(missing),
                     key=lambda p: (p.step, p.part_id)),
        usage=usage,
        cost_usd=round(sum(r.cost_usd for r in ordered), 10),
        latency_ms=max(0.0, (now - first.received_at).total_seconds() * 1000),
        ttft_ms=ttft(output, list(answered), ordered),
        stream_events=sum(r.stream_events for r in ordered),
        policy_version=first.policy_version,
        path=list(path),
        missing_parts=sorted(p.part_id for p in missing),
        created_at=now,
    )


def single_response(result: ResultEvent, now: datetime | None = None) -> ResponseEvent:
    """One part, no plan to carry out: its outcome is the response."""
    if result.status == "ok":
        return build_response([result], status="ok", output=result.text, answered=[result],
                              now=now)
    return build_response([result], status="error", error=result.error, now=now)
