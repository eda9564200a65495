"""The deterministic answer to a request, before it is written in a wire format.

`respond` decides between a tool call and text:

* tools offered, tool choice not `none`, last turn a user turn -> call the forced tool, or
  the first one, with arguments generated from its JSON Schema (`schemagen`);
* last turn a tool result -> text quoting the result:
  ``"[{model}] {tool} returned: {result}"``;
* a JSON output schema (or plain JSON mode) -> JSON text valid for the schema (a scripted
  `reply` is used when it is itself valid JSON for the schema, or always when the model is
  scripted with `break_schema`: a model that breaks its output format);
* otherwise the usual echo / scripted reply.  Images are acknowledged in the text:
  ``"[{model}] saw 2 images: ..."`` so tests can assert they arrived.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import orjson

from . import schemagen
from .prompts import Prompt
from .replies import Reply, make_reply

_ids = itertools.count(1)
JSON_ANY = {"type": "object"}  # json_object mode: any JSON object


@dataclass(slots=True)
class ToolSpec:
    name: str
    schema: dict


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


@dataclass(slots=True)
class Choice:
    """Tool choice in neutral terms: mode auto / none / required, optionally one name."""

    mode: str = "auto"
    name: str | None = None


@dataclass(slots=True)
class Answer:
    reply: Reply
    tool_calls: list[ToolCall] = field(default_factory=list)


def new_call_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):016x}"


def respond(
    model: str,
    prompt: Prompt,
    scripted: str | None,
    max_tokens: int | None,
    tools: list[ToolSpec] = (),
    choice: Choice | None = None,
    json_schema: dict | None = None,
    call_prefix: str = "call_",
    break_schema: bool = False,
) -> Answer:
    choice = choice or Choice()
    n_in = prompt.input_words
    if tools and choice.mode != "none" and prompt.tool_result is None:
        spec = next((t for t in tools if t.name == choice.name), tools[0])
        call = ToolCall(new_call_id(call_prefix), spec.name, _arguments(spec.schema))
        words = len(call.arguments_json.split())
        return Answer(Reply("", max(1, words), max(1, n_in), False), [call])
    if prompt.tool_result is not None:
        scripted = scripted or f"[{model}] {prompt.tool_name or 'tool'} returned: {prompt.tool_result}"
    elif json_schema is not None and not (break_schema and scripted is not None):
        scripted = _json_text(json_schema, scripted)
    note = ""
    if prompt.images:
        note = f"saw {prompt.images} image{'s' if prompt.images > 1 else ''}: "
    return Answer(make_reply(model, prompt.last_user, scripted, max_tokens, n_in, note))


def _arguments(schema: dict) -> dict:
    value = schemagen.instance_for(schema or {"type": "object"})
    return value if isinstance(value, dict) else {}


def _json_text(schema: dict, scripted: str | None) -> str:
    if scripted is not None:
        try:
            if schemagen.check(schema, orjson.loads(scripted)) is None:
                return scripted
        except orjson.JSONDecodeError:
            pass
    return orjson.dumps(schemagen.instance_for(schema)).decode()
