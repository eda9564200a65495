"""A task in Anthropic Messages form, normalised so that the API accepts every
contract-valid request.

Reference: https://docs.anthropic.com/en/api/messages, tool use
https://docs.anthropic.com/en/docs/build-with-claude/tool-use, vision
https://docs.anthropic.com/en/docs/build-with-claude/vision.

* system text → the top-level ``system``; a system-only request: the system text becomes the
  user turn.
* images → ``image`` blocks, ``source`` ``base64`` (inline data and ``data:`` URLs) or ``url``.
* assistant ``tool_calls`` → ``tool_use`` blocks (``input``: the arguments object);
  ``tool`` turns → user turns of ``tool_result`` blocks, placed before any text of the turn.
* empty text (``""`` or whitespace only, which the API refuses) is dropped, a turn left with
  no block is dropped; trailing whitespace of a final assistant (prefill) turn is cut.
* roles alternate: consecutive turns of one role are merged into one; a conversation that
  starts with the assistant gets a leading user turn (``LEADING_USER_TURN``). The current
  reference combines consecutive turns itself and accepts a leading assistant turn; older
  API versions and Bedrock refuse both, so the request is made valid for all of them.
* ``temperature`` is clamped to Anthropic's 0..1 (values above 1 become 1, so the shared
  default 1.0 means the same everywhere); with ``temperature`` set, ``top_p`` is not sent
  (current Claude models refuse both together).
* ``stop_sequences``: all of them (no documented count limit; the contract allows 8) but
  whitespace-only ones (``"\n"``), which the API refuses ("each stop sequence must contain
  non-whitespace"); those are enforced on the output.
* ``tools`` → ``{name, description, input_schema}``; ``tool_choice`` auto → ``auto``,
  required → ``any``, a named one → ``tool``, none → ``none``; ``parallel_tool_calls:
  false`` → ``disable_parallel_tool_use``.
* JSON answers (``json_object`` / ``json_schema``): with no caller tools, a forced tool
  (``JSON_TOOL``, its ``input_schema`` the answer's schema; a schema that is not an object is
  wrapped under ``value``) whose input is the answer, as Anthropic documents for JSON output
  (https://docs.anthropic.com/en/docs/test-and-evaluate/strengthen-guardrails/increase-consistency);
  with caller tools, an instruction in the system text.
"""

from __future__ import annotations

from typing import Any

from modelbus_schemas import ChatMessage, TaskEvent
from modelbus_schemas.content import ImagePart, NamedToolChoice

from modelbus_adapter_worker.adapters.wire import (
    EMPTY_TURN,
    LEADING_USER_TURN,
    arguments_object,
    content_parts,
    inline_image,
    json_instruction,
    merged_turns,
    present,
    unresolved,
    wire_stops,
)
from modelbus_adapter_worker.prompt import prompt_of

JSON_TOOL = "json_answer"
JSON_TOOL_DESCRIPTION = "Give the answer: its input is the answer, as JSON."


def _blocks(message: ChatMessage) -> list[dict]:
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.text.strip():
            result["content"] = message.text
        return [result]
    blocks: list[dict] = []
    for part in content_parts(message):
        if isinstance(part, str):
            if part.strip():
                blocks.append({"type": "text", "text": part})
        elif isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": _image_source(part)})
        else:
            unresolved(part)
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(c)}
               for c in message.tool_calls or ()]
    return blocks


def _image_source(part: ImagePart) -> dict:
    inline = inline_image(part)
    if inline is not None:
        return {"type": "base64", "media_type": inline[0], "data": inline[1]}
    return {"type": "url", "url": part.url}


def turns_of(system: str | None, turns: list[ChatMessage]) -> tuple[str | None, list[dict]]:
    """(system, messages) meeting Anthropic's rules on roles, order and empty content."""
    merged = merged_turns(((m.role if m.role == "assistant" else "user", _blocks(m))
                           for m in turns), "content")
    for turn in merged:  # tool results come first in a user turn
        turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if not merged:
        text, system = (system, None) if system else (EMPTY_TURN, system)
        merged = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    if merged[0]["role"] != "user":
        merged.insert(0, {"role": "user",
                          "content": [{"type": "text", "text": LEADING_USER_TURN}]})
    last = merged[-1]
    if last["role"] == "assistant" and last["content"][-1]["type"] == "text":
        last["content"][-1]["text"] = last["content"][-1]["text"].rstrip()
    return system, merged


def tool_choice(choice, parallel: bool | None) -> dict:
    if isinstance(choice, NamedToolChoice):
        out: dict[str, Any] = {"type": "tool", "name": choice.name}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice or "auto"]}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def json_tool_schema(task: TaskEvent) -> tuple[dict, bool]:
    """The forced tool's ``input_schema`` and whether the answer is wrapped under
    ``value`` (Anthropic tool inputs are objects)."""
    fmt = task.params.response_format
    schema = fmt.json_schema.schema_ if fmt and fmt.json_schema else {"type": "object"}
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True


def body_of(task: TaskEvent, *, default_max_tokens: int) -> tuple[dict, dict]:
    """The request body (without ``stream``) and what parsing the answer must know."""
    prompt = prompt_of(task)
    params, meta = task.params, {}
    system = prompt.system
    fmt = params.response_format
    wants_json = fmt is not None and fmt.wants_json
    if wants_json and params.tools:
        system = f"{system}\n\n{json_instruction(fmt)}" if system else json_instruction(fmt)
    system, messages = turns_of(system, prompt.turns)
    body: dict[str, Any] = {"model": task.model,
                            "max_tokens": params.max_tokens or default_max_tokens,
                            "messages": messages}
    if system:
        body["system"] = system
    if params.temperature is not None:
        body["temperature"] = min(params.temperature, 1.0)
    elif params.top_p is not None:
        body["top_p"] = params.top_p
    stops = wire_stops(params.stop, blank_ok=False)
    if stops:
        body["stop_sequences"] = stops
    if params.tools:
        body["tools"] = [present(name=t.name, description=t.description,
                                 input_schema=t.parameters) for t in params.tools]
        if params.tool_choice is not None or params.parallel_tool_calls is False:
            body["tool_choice"] = tool_choice(params.tool_choice, params.parallel_tool_calls)
    elif wants_json:
        schema, wrapped = json_tool_schema(task)
        body["tools"] = [{"name": JSON_TOOL, "description": JSON_TOOL_DESCRIPTION,
                          "input_schema": schema}]
        body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        meta = {"json_tool": JSON_TOOL, "json_wrapped": wrapped}
    return body, meta
