"""OpenAI Chat Completions request pieces → the modelbus contract: messages (text and image
parts, assistant tool calls, tool results), tools, tool_choice and response_format.

Every refusal is a 400 naming the offending field in OpenAI's error shape. Data URLs of
images become inline base64 parts with their media type, so every provider (Anthropic and
Gemini take no data URLs) gets the image in the form it reads.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from modelbus_schemas import (
    ChatMessage,
    ImagePart,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolSpec,
)
from pydantic import ValidationError

from modelbus_gateway.errors import GatewayError, bad_request

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool"}
_DATA_URL = re.compile(r"^data:(image/[a-z+.-]+);base64,(.*)$", re.DOTALL)


def json_body(raw: bytes) -> tuple[dict, str, dict[str, str]]:
    """The body as a JSON object, the task its ``model`` names, and its ``metadata``."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    task = body.get("model")
    if not isinstance(task, str) or not task:
        raise bad_request("model is required: the name of a task", "model")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise bad_request("metadata must map strings to strings", "metadata")
    return body, task, metadata


def _invalid(exc: ValidationError, where: str) -> GatewayError:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return bad_request(err["msg"], f"{where}.{loc}" if loc else where)


def _image(part: dict, where: str) -> ImagePart:
    spec = part.get("image_url")
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        raise bad_request("image_url must be an object with a url", f"{where}.image_url")
    url, detail = spec["url"], spec.get("detail")
    inline = _DATA_URL.match(url)
    try:
        if inline:
            return ImagePart(data=inline.group(2), media_type=inline.group(1), detail=detail)
        return ImagePart(url=url, detail=detail)
    except ValidationError as exc:
        raise _invalid(exc, f"{where}.image_url") from None


def _content(raw: Any, where: str) -> str | list | None:
    if raw is None or isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise bad_request("content must be a string or a list of parts", where)
    parts: list = []
    for j, part in enumerate(raw):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(text=part["text"]))
        elif kind == "image_url":
            parts.append(_image(part, f"{where}[{j}]"))
        else:
            raise bad_request(f"content part type {kind!r} is not supported (text, image_url)",
                              f"{where}[{j}].type")
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts)  # text only: one string, as OpenAI reads it
    return parts


def _tool_calls(raw: Any, where: str) -> list[ToolCall] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise bad_request("tool_calls must be a non-empty list", where)
    calls = []
    for j, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise bad_request("a tool call is {id, type: function, function: {name, "
                              "arguments}}", f"{where}[{j}]")
        try:
            calls.append(ToolCall(id=call.get("id"), name=function.get("name"),
                                  arguments=function.get("arguments") or "{}"))
        except ValidationError as exc:
            raise _invalid(exc, f"{where}[{j}]") from None
    return calls


def parse_messages(raw: Any) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty list", "messages")
    out = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        role = _ROLES.get(msg.get("role")) if isinstance(msg, dict) else None
        if role is None:
            raise bad_request("role must be one of system, developer, user, assistant, tool",
                              f"{where}.role")
        if "function_call" in msg:
            raise bad_request("function_call is deprecated: use tool_calls", where)
        content = _content(msg.get("content"), f"{where}.content")
        calls = _tool_calls(msg.get("tool_calls"), f"{where}.tool_calls")
        if content is None and calls is None:
            content = ""
        try:
            out.append(ChatMessage(role=role, content=content, tool_calls=calls,
                                   tool_call_id=msg.get("tool_call_id")))
        except ValidationError as exc:
            raise _invalid(exc, where) from None
    return out


def parse_tools(body: dict) -> dict:
    """``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format`` as
    GenerationParams fields (absent ones left out)."""
    out: dict = {}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise bad_request("tools must be a non-empty list", "tools")
        out["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") != "function" or not isinstance(function, dict):
            raise bad_request("tool_choice must be none, auto, required or "
                              "{type: function, function: {name}}", "tool_choice")
        try:
            out["tool_choice"] = NamedToolChoice(name=function.get("name"))
        except ValidationError as exc:
            raise _invalid(exc, "tool_choice") from None
    elif choice is not None:
        out["tool_choice"] = choice
    if body.get("parallel_tool_calls") is not None:
        out["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("response_format") is not None:
        try:
            out["response_format"] = ResponseFormat.model_validate(body["response_format"])
        except ValidationError as exc:
            raise _invalid(exc, "response_format") from None
    return out


def _tool(raw: Any, where: str) -> ToolSpec:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or raw.get("type", "function") != "function":
        raise bad_request("a tool is {type: function, function: {name, description, "
                          "parameters}}", where)
    try:
        return ToolSpec.model_validate({k: v for k, v in function.items() if v is not None})
    except ValidationError as exc:
        raise _invalid(exc, f"{where}.function") from None


def tool_calls_wire(calls: list[ToolCall]) -> list[dict]:
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
