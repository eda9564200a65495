"""Rendering a :class:`Lineage` as readable terminal text (``modelbus audit show``).

A box-drawing tree, one line per step, times as UTC ``HH:MM:SS.mmm`` (the date is on the
title line, and on any step of another day). Everything shown comes from stored columns or
the stored payload, with control characters escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from modelbus_audit.lineage import Lineage, PartNode, not_streamed
from modelbus_audit.stored import StoredEvent

Clock = Callable[[StoredEvent], str]


def render_all(request_id: str, lineages: list[Lineage]) -> str:
    """One request id's lineages; when several tenants used it, each apart, and said so."""
    if len(lineages) <= 1:
        return render_text(lineages[0]) if lineages else f"no audit records for {request_id}"
    tenants = ", ".join(str(lineage.tenant) for lineage in lineages)
    note = (f"request id {request_id} was used by {len(lineages)} tenants ({tenants}); "
            "each is shown apart (pass --tenant to pick one)")
    return "\n\n".join([_printable(note)] + [render_text(lineage) for lineage in lineages])


def render_text(lineage: Lineage) -> str:
    if not lineage.events:
        return f"no audit records for request {lineage.request_id}"
    day = (lineage.request or lineage.events[0]).event_time.date()
    _time = _clock(day)
    lines = [_title(lineage)]
    if lineage.request:
        lines.append(f"├─ {_time(lineage.request)} request   {_where(lineage.request)}")
    if lineage.decision:
        lines += _decision_lines(lineage.decision)
    for part in lineage.parts:
        lines += _part_lines(part, _time)
    for response in lineage.responses:
        lines.append(f"├─ {_time(response)} response  {_outcome(response)}{_models(response)}"
                     f"{_stream(response)}")
    for dead in lineage.dead_letters:
        lines += _dead_letter_lines(dead, _time)
    for event in lineage.other:
        lines.append(f"├─ {_time(event)} {event.kind:<9} {_where(event)}")
    for event in lineage.flagged:
        lines.append(f"├─ {_time(event)} FLAGGED [{event.flags}] {event.kind}  {_where(event)}")
        if event.auth_error:
            lines.append(f"│    {event.auth_error}")
    flagged = f", {len(lineage.flagged)} flagged" if lineage.flagged else ""
    lines.append(f"└─ {len(lineage.events)} events{flagged}, "
                 f"total cost ${lineage.total_cost_usd:.6f}")
    return "\n".join(_printable(line) for line in lines)


def _printable(line: str) -> str:
    """Stored text is untrusted: escape control characters so nothing drives the terminal."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


def _title(lineage: Lineage) -> str:
    first = lineage.request or lineage.events[0]
    who = ", ".join(
        f"{label}={value}"
        for label, value in (
            ("tenant", lineage.tenant or first.tenant), ("team", first.team), ("user", first.caller_user),
            ("task", first.task), ("data_class", first.data_class),
        )
        if value
    )
    return f"request {lineage.request_id}  {first.event_time:%Y-%m-%d} UTC  {who}".rstrip()


def _decision_lines(decision: dict[str, Any]) -> list[str]:
    refs = decision.get("selected") or []
    selected = ", ".join(_ref(ref) for ref in refs if isinstance(ref, dict))
    lines = [
        (
            f"├─ routing   policy {decision.get('policy_version')}  route={decision.get('route')}"
            f"  strategy={decision.get('strategy')}"
        ),
        f"│    selected: {selected or '-'}",
    ]
    for rejected in decision.get("rejected") or []:
        if isinstance(rejected, dict):
            lines.append(f"│    rejected: {_ref(rejected)} ({rejected.get('reason')})")
    why = not_streamed(decision)
    if why:
        lines.append(f"│    {why}")
    return lines


def _part_lines(part: PartNode, _time: Clock) -> list[str]:
    lines = [f"├─ part {part.part_id}  {part.provider}/{part.model}"]
    for task in part.tasks:
        lines.append(f"│   ├─ {_time(task)} task     {_where(task)}")
    for attempt in part.attempts:
        status = attempt.get("status_code")
        error = f" {attempt['error_code']}" if attempt.get("error_code") else ""
        lines.append(
            f"│   ├─ attempt {attempt.get('number')}: {attempt.get('outcome')}"
            f" http={status if status is not None else '-'}"
            f" {_number(attempt.get('latency_ms'))} ms{error}"
        )
    for result in part.results:
        latency = (result.payload or {}).get("latency_ms")
        lines.append(
            f"│   └─ {_time(result)} result   {_outcome(result)}"
            f"  latency={_number(latency)} ms"
        )
    return lines


def _dead_letter_lines(dead: StoredEvent, _time: Clock) -> list[str]:
    lines = [
        (
            f"├─ {_time(dead)} DEAD LETTER  reason={dead.dlq_reason}"
            f"  from {dead.dlq_source_topic}"
            f"  ({dead.topic}[{dead.kafka_partition}]@{dead.kafka_offset})"
        ),
    ]
    if dead.dlq_error:
        lines.append(f"│    error: {dead.dlq_error[:200]}")
    if dead.body_excerpt is not None:
        lines.append(f"│    body ({dead.body_size} bytes, not JSON): {dead.body_excerpt[:120]}")
    return lines


def _outcome(event: StoredEvent) -> str:
    parts = [event.status or "?"]
    if event.error_code:
        parts.append(f"error={event.error_code}")
    if event.cost_usd is not None:
        parts.append(f"cost=${event.cost_usd:.6f}")
    if event.policy_version:
        parts.append(f"policy={event.policy_version}")
    return "  ".join(parts)


def _models(event: StoredEvent) -> str:
    models = (event.payload or {}).get("models")
    return f"  models={','.join(map(str, models))}" if isinstance(models, list) and models else ""


def _stream(event: StoredEvent) -> str:
    """``  ttft=… ms  stream_events=…`` for a response whose answer streamed."""
    payload = event.payload or {}
    events = payload.get("stream_events")
    if not events:
        return ""
    return f"  ttft={_number(payload.get('ttft_ms'))} ms  stream_events={events}"


def _where(event: StoredEvent) -> str:
    return f"{event.event_id}  ({event.topic}[{event.kafka_partition}]@{event.kafka_offset})"


def _ref(ref: dict[str, Any]) -> str:
    return f"{ref.get('provider')}/{ref.get('model')}"


def _clock(day: date) -> Clock:
    """Formats event times as ``HH:MM:SS.mmm``, with the date when it is not ``day``."""

    def stamp(event: StoredEvent) -> str:
        moment: datetime = event.event_time
        text = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
        return text if moment.date() == day else f"{moment:%Y-%m-%d} {text}"

    return stamp


def _number(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
