"""What the audit's lineage shows of streaming (issue 20): why a request that asked to
stream did not (the router's ``stream`` finding on its decision) and, for a response whose
answer streamed, its time to first token and stream events. Pure: the router's planner
and the audit's lineage functions over stored rows built from the real events."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from modelbus_audit.lineage import build_lineage, event_summary
from modelbus_audit.render import render_text
from modelbus_audit.stored import StoredEvent
from modelbus_audit.timeline import build_timeline
from modelbus_router.guardrails.spec import OutputGuards
from modelbus_router.planner import plan
from modelbus_router.policy import parse_policy
from modelbus_router.streaming import with_stream
from modelbus_schemas import RequestEvent, ResponseEvent

POLICY = parse_policy("""
catalog:
  a: {provider: openai, model: model-a}
  b: {provider: anthropic, model: model-b}
routes:
  plain: {targets: [{model: a}]}
  vote: {strategy: ensemble, targets: [{model: a}, {model: b}]}
""")
T = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _row(n: int, kind: str, payload: dict, **kw) -> StoredEvent:
    values = {f.name: None for f in fields(StoredEvent)}
    values.update(id=n, event_id=f"e{n}", kind=kind, request_id="r-1", event_time=T,
                  topic=f"modelbus.{kind}s.v1", kafka_partition=0, kafka_offset=n,
                  body_size=1, headers=[], stored_at=T, chain="c", chain_seq=n,
                  content_hash="h", prev_hash="h", row_hash="h", tenant="default",
                  payload=payload, **kw)
    return StoredEvent(**values)


def _lineage(route: str, response: ResponseEvent):
    request = RequestEvent(request_id="r-1", task=route, stream=True,
                           messages=[{"role": "user", "content": "hi"}])
    routed = with_stream(plan(request, POLICY, now=T), request, OutputGuards(), {})
    rows = [_row(i + 1, "task", t.model_dump(mode="json"), part_id=t.part_id,
                 provider=t.provider, model=t.model) for i, t in enumerate(routed.tasks)]
    rows.append(_row(9, "response", response.model_dump(mode="json"), status=response.status))
    return build_lineage("r-1", rows)


def _response(**kw) -> ResponseEvent:
    return ResponseEvent(event_id="r", request_id="r-1", status="ok", output="hi",
                         latency_ms=900.0, created_at=T, **kw)


def test_a_streamed_response_shows_its_ttft_and_stream_events():
    lineage = _lineage("plain", _response(ttft_ms=85.25, stream_events=7))
    assert "response  ok" in render_text(lineage)
    assert "ttft=85.2 ms  stream_events=7" in render_text(lineage)
    summary = event_summary(lineage.responses[0])
    assert summary["ttft_ms"] == 85.25 and summary["stream_events"] == 7
    [step] = [s for s in build_timeline(lineage) if s["kind"] == "response"]
    assert step["details"]["ttft_ms"] == 85.25 and step["details"]["stream_events"] == 7
    assert "not streamed" not in render_text(lineage)


def test_a_request_that_did_not_stream_shows_why_and_no_stream_figures():
    lineage = _lineage("vote", _response(ttft_ms=40.0))
    text = render_text(lineage)
    assert "not streamed: ensemble plans answer once the final step is decided" in text
    assert "stream_events=" not in text
    [routing] = [s for s in build_timeline(lineage) if s["kind"] == "routing"]
    assert routing["details"]["not_streamed"].startswith("not streamed: ensemble")
    assert "stream_events" not in event_summary(lineage.responses[0])
