"""A task in Gemini ``generateContent`` form, normalised so that the API accepts every
contract-valid request, and the function calls of an answer read back.

Reference: https://ai.google.dev/api/generate-content, content and parts
https://ai.google.dev/api/caching#Content, function calling
https://ai.google.dev/gemini-api/docs/function-calling, structured output
https://ai.google.dev/gemini-api/docs/structured-output.

* roles ``user`` / ``model``; system text → ``systemInstruction``; a system-only request:
  the system text becomes the user turn. Consecutive turns of one role are merged.
* images → ``inlineData`` (inline data and ``data:`` URLs) or ``fileData`` (other URLs, with
  the media type when known; public https URLs are fetched by the API,
  https://ai.google.dev/gemini-api/docs/file-input-methods).
* assistant ``tool_calls`` → ``functionCall`` parts (``args``: the arguments object);
  ``tool`` turns → user turns of ``functionResponse`` parts, whose ``name`` is the message's
  ``name`` or, when absent, the name of the call with its ``tool_call_id`` earlier in the
  conversation (an unknown id cannot be answered: the request is invalid).
* empty text parts (refused) are dropped, a turn left with no part is dropped.
* at most 5 ``stopSequences``: the first 5 non-empty ones are sent, the rest enforced on the output.
* ``tools`` → one ``functionDeclarations`` tool, parameters as ``parametersJsonSchema``
  (full JSON Schema, no conversion to the OpenAPI subset); ``toolConfig.
  functionCallingConfig.mode`` auto → ``AUTO``, none → ``NONE``, required → ``ANY``, a named
  tool → ``ANY`` with ``allowedFunctionNames``. ``parallel_tool_calls`` has no Gemini
  counterpart and is not sent.
* Gemini 3 and later require the ``thoughtSignature`` their answer carried on the first
  ``functionCall`` part of each model turn when it is sent back; the contract keeps no
  signatures, so that part carries the validator bypass Google documents for histories
  without one (``SKIP_SIGNATURE``, https://ai.google.dev/gemini-api/docs/thought-signatures).
* JSON answers: ``responseMimeType: application/json`` plus ``responseJsonSchema`` for a
  schema; with tools also offered (Gemini refuses a JSON mime type with function calling),
  an instruction in the system text instead.
"""

from __future__ import annotations

import re
from typing import Any

from modelbus_schemas import ChatMessage, TaskEvent
from modelbus_schemas.content import ImagePart, NamedToolChoice, ToolCall

from modelbus_adapter_worker.adapters.wire import (
    EMPTY_TURN,
    arguments_object,
    content_parts,
    dumps,
    inline_image,
    json_instruction,
    merged_turns,
    present,
    result_object,
    stable_call_id,
    unresolved,
    url_media_type,
    wire_stops,
)
from modelbus_adapter_worker.prompt import prompt_of

MAX_STOP = 5
ROLES = {"user": "user", "tool": "user", "assistant": "model"}
MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
SKIP_SIGNATURE = "skip_thought_signature_validator"
_GENERATION = re.compile(r"^(?:models/)?gemini-(\d+)")


def needs_signatures(model: str) -> bool:
    match = _GENERATION.match(model.lower())
    return match is not None and int(match.group(1)) >= 3


def _sign_calls(contents: list[dict]) -> None:
    for content in contents:
        if content["role"] != "model":
            continue
        for part in content["parts"]:
            if "functionCall" in part:
                part.setdefault("thoughtSignature", SKIP_SIGNATURE)
                break


def _image(part: ImagePart) -> dict:
    inline = inline_image(part)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    file: dict[str, str] = {"fileUri": part.url or ""}
    media = part.media_type or url_media_type(part.url or "")
    if media:
        file["mimeType"] = media
    return {"fileData": file}


def _parts(message: ChatMessage, names: dict[str, str]) -> list[dict]:
    if message.role == "tool":
        name = message.name or names.get(message.tool_call_id or "")
        if name is None:
            raise ValueError(f"tool turn answers call {message.tool_call_id!r}, which no "
                             "earlier assistant turn made, and names no function")
        return [{"functionResponse": {"name": name, "response": result_object(message.text)}}]
    parts: list[dict] = []
    for part in content_parts(message):
        if isinstance(part, str):
            if part:
                parts.append({"text": part})
        elif isinstance(part, ImagePart):
            parts.append(_image(part))
        else:
            unresolved(part)
    parts += [{"functionCall": {"name": c.name, "args": arguments_object(c)}}
              for c in message.tool_calls or ()]
    return parts


def contents_of(system: str | None, turns: list[ChatMessage],
                names: dict[str, str]) -> tuple[str | None, list[dict]]:
    contents = merged_turns(((ROLES[m.role], _parts(m, names)) for m in turns), "parts")
    if not contents:
        text, system = (system, None) if system else (EMPTY_TURN, system)
        contents = [{"role": "user", "parts": [{"text": text}]}]
    return system, contents


def body_of(task: TaskEvent) -> dict:
    prompt = prompt_of(task)
    params = task.params
    fmt = params.response_format
    wants_json = fmt is not None and fmt.wants_json
    system = prompt.system
    if wants_json and params.tools:
        system = f"{system}\n\n{json_instruction(fmt)}" if system else json_instruction(fmt)
    system, contents = contents_of(system, prompt.turns, prompt.tool_names())
    if needs_signatures(task.model):
        _sign_calls(contents)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    config = present(maxOutputTokens=params.max_tokens, temperature=params.temperature,
                     topP=params.top_p, stopSequences=wire_stops(params.stop, MAX_STOP))
    if wants_json and not params.tools:
        config["responseMimeType"] = "application/json"
        if fmt.json_schema is not None:
            config["responseJsonSchema"] = fmt.json_schema.schema_
    if config:
        body["generationConfig"] = config
    if params.tools:
        body["tools"] = [{"functionDeclarations": [
            present(name=t.name, description=t.description, parametersJsonSchema=t.parameters)
            for t in params.tools]}]
        if params.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _calling_config(params.tool_choice)}
    return body


def _calling_config(choice) -> dict:
    if isinstance(choice, NamedToolChoice):
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": MODES[choice]}


def candidate_output(candidate: dict, first_index: int = 0) -> tuple[str, list[ToolCall]]:
    """Text (thoughts left out) and function calls of a candidate; calls without an id get
    stable ones, numbered from ``first_index``."""
    texts, calls = [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue
        if "text" in part:
            texts.append(part["text"])
        call = part.get("functionCall")
        if call:
            arguments = dumps(call.get("args") or {})
            index = first_index + len(calls)
            calls.append(ToolCall(
                id=call.get("id") or stable_call_id("call", index, call["name"], arguments),
                name=call["name"], arguments=arguments))
    return "".join(texts), calls
