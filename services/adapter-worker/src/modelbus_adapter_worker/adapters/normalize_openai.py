"""A task in OpenAI Chat Completions form (also vLLM / Ollama, ``selfhosted``), and the tool
calls of an answer read back, whole or streamed.

Reference: https://platform.openai.com/docs/api-reference/chat/create

* messages: ``system`` / ``user`` / ``assistant`` (with ``tool_calls``) / ``tool`` (with
  ``tool_call_id``); image parts are ``image_url`` parts, an inline image a base64 ``data:``
  URL (https://platform.openai.com/docs/guides/images-vision).
* ``tools`` are ``{"type": "function", "function": {name, description, parameters,
  strict}}``; ``tool_choice`` is ``auto`` / ``none`` / ``required`` or a named function;
  ``parallel_tool_calls`` only goes with tools.
* ``response_format`` ``json_object`` / ``json_schema`` as the contract has them. OpenAI
  refuses ``json_object`` unless a message contains the word "json": a system line asking
  for a JSON object is added when none does.
* ``strict: true`` (tools and ``json_schema``) only where the schema meets strict mode
  (every object closes ``additionalProperties`` and requires all its properties,
  https://platform.openai.com/docs/guides/structured-outputs#supported-schemas); otherwise
  it is sent as ``false`` rather than refused: the answer is still checked against the
  schema by the aggregator.
* at most 4 ``stop`` strings: the first 4 non-empty ones are sent, the rest are enforced on the output
  (:mod:`modelbus_adapter_worker.answer`).
* reasoning models (o1, o3, o4 and gpt-5 families except gpt-5-chat) take no
  ``temperature`` / ``top_p`` (dropped) and ``max_completion_tokens`` (always, on
  ``openai``); their ``stop`` is enforced on the output only
  (https://platform.openai.com/docs/guides/reasoning).
"""

from __future__ import annotations

import re
from typing import Any

from modelbus_schemas import ChatMessage, TaskEvent
from modelbus_schemas.content import ImagePart, NamedToolChoice, ToolCall
from modelbus_schemas.stream import ToolCallDelta

from modelbus_adapter_worker.adapters.wire import (
    content_parts,
    data_url,
    present,
    unresolved,
    wire_stops,
)
from modelbus_adapter_worker.prompt import prompt_of

MAX_STOP = 4
REASONING = re.compile(r"^(o1|o3|o4)([-.]|$)|^gpt-5(?!-chat)")
JSON_OBJECT_LINE = "Answer with a JSON object."


def is_reasoning(model: str) -> bool:
    return bool(REASONING.match(model.lower()))


def _content(message: ChatMessage) -> str | list[dict] | None:
    if message.content is None or isinstance(message.content, str):
        return message.content
    parts: list[dict] = []
    for part in content_parts(message):
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": data_url(part)}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            unresolved(part)
    return parts


def _message(message: ChatMessage) -> dict:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    out: dict[str, Any] = {"role": message.role, "content": _content(message)}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in message.tool_calls]
    return out


def messages_of(task: TaskEvent) -> list[dict]:
    prompt = prompt_of(task)
    system = prompt.system
    fmt = task.params.response_format
    if fmt is not None and fmt.type == "json_object" and not _mentions_json(task):
        system = f"{system}\n\n{JSON_OBJECT_LINE}" if system else JSON_OBJECT_LINE
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [_message(m) for m in prompt.turns]


def _mentions_json(task: TaskEvent) -> bool:
    return any("json" in m.text.lower() for m in task.messages) or any(
        "json" in c.content.lower() for c in task.context)


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_NOT_SCHEMAS = ("enum", "const", "default", "examples", "required", "description", "title")


def strict_ready(node: Any) -> bool:
    """Whether OpenAI's strict mode takes this JSON Schema."""
    if isinstance(node, list):
        return all(strict_ready(n) for n in node)
    if not isinstance(node, dict):
        return True
    kind = node.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind):
        properties = node.get("properties") or {}
        if node.get("additionalProperties") is not False or set(
                node.get("required") or ()) != set(properties):
            return False
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            if not all(strict_ready(v) for v in value.values()):
                return False
        elif key not in _NOT_SCHEMAS and not strict_ready(value):
            return False
    return True


def _strict(strict: bool | None, schema: dict) -> bool | None:
    return False if strict and not strict_ready(schema) else strict


def tool_choice(choice) -> str | dict:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def body_fields(task: TaskEvent, *, system: str, max_tokens_field: str) -> dict:
    """Everything but ``model``, ``messages`` and the stream flags."""
    params = task.params
    body = present(**{max_tokens_field: params.max_tokens})
    if not (system == "openai" and is_reasoning(task.model)):
        body.update(present(temperature=params.temperature, top_p=params.top_p,
                            stop=wire_stops(params.stop, MAX_STOP)))
    if params.tools:
        body["tools"] = [{"type": "function", "function": present(
            name=t.name, description=t.description, parameters=t.parameters,
            strict=_strict(t.strict, t.parameters))} for t in params.tools]
        if params.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = params.parallel_tool_calls
    if params.tool_choice is not None and params.tools:  # refused without tools
        body["tool_choice"] = tool_choice(params.tool_choice)
    fmt = params.response_format
    if fmt is not None and fmt.type != "text":
        body["response_format"] = fmt.model_dump(mode="json", exclude_none=True, by_alias=True)
        if fmt.json_schema is not None and fmt.json_schema.strict:
            body["response_format"]["json_schema"]["strict"] = _strict(
                True, fmt.json_schema.schema_)
    return body


def tool_calls_of(raw: list[dict] | None) -> list[ToolCall] | None:
    if not raw:
        return None
    return [ToolCall(id=c["id"], name=c["function"]["name"],
                     arguments=c["function"].get("arguments") or "{}") for c in raw]


class ToolCallAssembler:
    """Streamed ``delta.tool_calls`` fragments put back together by ``index``: the first
    fragment of a call carries its id and name, later ones pieces of its arguments."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def feed(self, fragments: list[dict]) -> list[ToolCallDelta]:
        """Keep the fragments; returns them as stream deltas (raises ValueError, TypeError
        or AttributeError for a fragment of the wrong shape)."""
        deltas = []
        for fragment in fragments:
            index = int(fragment.get("index", 0))
            call = self._calls.setdefault(index, {"id": None, "name": "", "arguments": []})
            call["id"] = fragment.get("id") or call["id"]
            function = fragment.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"].append(function.get("arguments") or "")
            deltas.append(ToolCallDelta(index=index, id=fragment.get("id") or None,
                                        name=function.get("name") or None,
                                        arguments=function.get("arguments") or ""))
        return deltas

    def calls(self) -> list[ToolCall] | None:
        if not self._calls:
            return None
        return [ToolCall(id=c["id"] or f"call_{i}", name=c["name"],
                         arguments="".join(c["arguments"]) or "{}")
                for i, c in sorted(self._calls.items())]
