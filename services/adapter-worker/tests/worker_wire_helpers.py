"""Builders shared by the wire-format tests: a task as the router sends it, a two-step
tool conversation, an SSE stream fed to a stream parser."""

from __future__ import annotations

from datetime import UTC, datetime

from modelbus_adapter_worker.adapters.sse import SseDecoder
from modelbus_schemas import ModelRef, RoutingDecision, TaskEvent

NOW = datetime.now(UTC)
PNG = "iVBORw0KGgo="
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
# A tool conversation: the model asked for get_weather, the caller answers it.
TOOL_TURNS = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'},
]
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
          "additionalProperties": False}
JSON_SCHEMA_FORMAT = {"type": "json_schema",
                      "json_schema": {"name": "count", "schema": SCHEMA, "strict": True}}


def task(provider: str = "openai", model: str = "gpt-4o", messages=None, **kw) -> TaskEvent:
    decision = RoutingDecision(policy_version="v1", route="t", strategy="single",
                               selected=[ModelRef(provider=provider, model=model)],
                               decided_at=NOW)
    if messages is None and kw.get("operation") != "embed":
        messages = [{"role": "user", "content": "Hi"}]
    return TaskEvent(event_id="r:task:0", request_id="r", task="t", part_id=0, parts_total=1,
                     provider=provider, model=model, received_at=NOW, decision=decision,
                     messages=messages or [], **kw)


def feed(parser, raw: str):
    decoder = SseDecoder()
    for line in raw.splitlines(keepends=True):
        frame = decoder.line(line)
        if frame:
            parser.feed(*frame)
    return parser.finish()


def sse(*frames: tuple[str | None, str]) -> str:
    return "".join((f"event: {e}\n" if e else "") + f"data: {d}\n\n" for e, d in frames)
