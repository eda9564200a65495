"""What the worker makes of a provider's answer before it becomes a result, the same for
every provider:

* stop sequences beyond what the provider takes (OpenAI and self-hosted 4, Gemini 5; all of
  them on reasoning models, which take none) are enforced here: the text is cut at the
  earliest occurrence of any of the request's stop sequences (the sequence itself left out,
  as providers do) and the finish reason becomes ``stop``. Sequences the provider already
  honoured never occur in its text, so applying all of them is exact.
* a ``json_object`` / ``json_schema`` answer is parsed into ``parsed``; text that is not
  JSON (a single surrounding Markdown code fence is tolerated) is an ``output_invalid``
  error, never a crash. Checking the value against the schema is the aggregator's.

A streamed answer is held to the same stops as it goes (:class:`StopHoldBack`): text
leaves only when no stop sequence can begin in it, and nothing after a stop ever leaves,
so what streamed is always the start of the final text.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson
from modelbus_schemas import ErrorCode, ErrorInfo, TaskEvent

from modelbus_adapter_worker.adapters import Completion

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```\s*$", re.DOTALL)


def cut_at_stops(text: str, stops: list[str] | None) -> str | None:
    """``text`` cut before the earliest stop sequence, or None when none occurs."""
    found = [i for i in (text.find(s) for s in stops or () if s) if i >= 0]
    return text[:min(found)] if found else None


class StopHoldBack:
    """Streamed text released as far as the request's stop sequences allow: the last
    ``longest stop - 1`` characters wait (a stop may begin there), and at a stop the text
    ends."""

    def __init__(self, stops: list[str] | None) -> None:
        self.stops = [s for s in stops or () if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.seen = ""
        self.released = 0
        self.stopped = False

    def feed(self, text: str) -> str:
        """The text that may leave now, given ``text`` arrived."""
        if not self.stops:
            return text
        if self.stopped:
            return ""
        self.seen += text
        cut = cut_at_stops(self.seen[self.released:], self.stops)
        if cut is not None:
            self.stopped = True
            end = self.released + len(cut)
        else:
            end = max(self.released, len(self.seen) - self.keep)
        out, self.released = self.seen[self.released:end], end
        return out


def parse_json(text: str) -> Any:
    fenced = _FENCE.match(text)
    return orjson.loads(fenced.group(1) if fenced else text)


def finish(task: TaskEvent, completion: Completion) -> tuple[Completion, Any, ErrorInfo | None]:
    """(the completion with stops enforced, the parsed JSON answer, an error if the answer
    is not what the request asked for)."""
    if task.operation == "embed":
        return completion, None, None
    cut = cut_at_stops(completion.text, task.params.stop)
    if cut is not None:
        completion = replace(completion, text=cut, finish_reason="stop")
    fmt = task.params.response_format
    if fmt is None or not fmt.wants_json or completion.tool_calls:
        return completion, None, None
    try:
        return completion, parse_json(completion.text), None
    except orjson.JSONDecodeError as exc:
        why = {"length": " (cut at the token limit)",
               "content_filter": " (the model refused)"}.get(completion.finish_reason, "")
        return completion, None, ErrorInfo(
            code=ErrorCode.OUTPUT_INVALID,
            message=f"the model's answer is not valid JSON{why}: {exc}"[:4000])
