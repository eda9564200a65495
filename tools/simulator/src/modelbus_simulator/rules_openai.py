"""OpenAI Chat Completions request rules (also applied to the self-hosted compatible path).

Each check takes the request body and returns ``(message, param, code)`` -- the message,
parameter and code the real API answers with -- or None.  Sources, per rule (see
`rules.RULES` for the ids):

* at most 4 `stop` strings: https://platform.openai.com/docs/api-reference/chat/create#chat-create-stop
* reasoning models (o1, o3, o4, gpt-5 except gpt-5-chat) take only the default
  `temperature`/`top_p` and `max_completion_tokens`, not `max_tokens`:
  https://platform.openai.com/docs/guides/reasoning and the `max_tokens` entry of
  https://platform.openai.com/docs/api-reference/chat/create ("not compatible with o-series models")
* function names match ``^[a-zA-Z0-9_-]{1,64}$`` (and `tool_choice` names one of them, or is
  none / auto / required with tools given) and `parameters` is a JSON Schema:
  https://platform.openai.com/docs/api-reference/chat/create#chat-create-tools
* every assistant `tool_calls` id is answered by a following `tool` message, and a `tool`
  message answers a preceding call: https://platform.openai.com/docs/guides/function-calling
* `response_format`: `json_object` needs the word "json" in the messages; `json_schema`
  needs a valid name and schema, and under `strict` every object has
  `additionalProperties: false` and lists all its properties as required:
  https://platform.openai.com/docs/guides/structured-outputs
* image parts need an http(s) URL or a base64 data URL of an image type, and a vision model:
  https://platform.openai.com/docs/guides/images-vision
"""

from __future__ import annotations

import re

from . import schemagen
from .prompts import openai_parts

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REASONING_RE = re.compile(r"^(o1|o3|o4)([-.]|$)|^gpt-5(?!-chat)")
DATA_URL_RE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")


def is_reasoning(model: str) -> bool:
    return bool(REASONING_RE.match(model))


def max_stop(body: dict):
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        return (
            ("Invalid 'stop': array too long. Expected an array with maximum length 4, "
            f"but got an array with length {len(stop)} instead."),
            "stop",
            "array_above_max_length",
        )
    return None


def reasoning_params(body: dict):
    if not is_reasoning(str(body.get("model"))):
        return None
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and value != 1:
            return (
                (f"Unsupported value: '{name}' does not support {value} with this model. "
                "Only the default (1) value is supported."),
                name,
                "unsupported_value",
            )
    if body.get("max_tokens") is not None:
        return (
            ("Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead."),
            "max_tokens",
            "unsupported_parameter",
        )
    return None


def _functions(body: dict):
    for i, tool in enumerate(body.get("tools") or ()):
        fn = tool.get("function") if isinstance(tool, dict) else None
        yield i, fn if isinstance(fn, dict) else {}


def tool_name(body: dict):
    for i, fn in _functions(body):
        name = fn.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            return (
                (f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'."),
                f"tools[{i}].function.name",
                "invalid_value",
            )
    return None


def tool_choice(body: dict):
    choice = body.get("tool_choice")
    if choice is None:
        return None
    names = {fn.get("name") for _, fn in _functions(body)}
    if not names and choice != "none":
        return (("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified."), "tool_choice", None)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            return ((f"Invalid value for 'tool_choice': function '{name}' is not one of the "
                    "functions in 'tools'."), "tool_choice", "invalid_value")
    elif choice not in ("none", "auto", "required"):
        return ((f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and "
                "'required'."), "tool_choice", "invalid_value")
    return None


def tool_schema(body: dict):
    for i, fn in _functions(body):
        params = fn.get("parameters", {"type": "object"})
        problem = _schema_problem(params, fn.get("strict") is True)
        if problem:
            return (
                f"Invalid schema for function '{fn.get('name')}': {problem}",
                f"tools[{i}].function.parameters",
                "invalid_function_parameters",
            )
    return None


def _schema_problem(schema: object, strict: bool) -> str | None:
    try:
        schemagen.check_schema(schema)
    except schemagen.SchemaError as exc:
        return str(exc)
    return _strict_problem(schema, ()) if strict else None


def _strict_problem(node: object, path: tuple) -> str | None:
    """Strict mode: every object closes `additionalProperties` and requires all keys."""
    if isinstance(node, list):
        return next((p for p in (_strict_problem(n, path) for n in node) if p), None)
    if not isinstance(node, dict):
        return None
    where = "/".join(("#", *path))
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return f"In context=({where}), 'additionalProperties' is required to be supplied and to be false."
        missing = sorted(set(node.get("properties") or {}) - set(node.get("required") or ()))
        if missing:
            return (f"In context=({where}), 'required' is required to be supplied and to be an "
                    f"array including every key in properties. Missing '{missing[0]}'.")
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            for name, sub in value.items():
                found = _strict_problem(sub, (*path, key, name))
                if found:
                    return found
        elif key in ("items", "anyOf", "allOf", "oneOf"):
            found = _strict_problem(value, (*path, key))
            if found:
                return found
    return None


def tool_answers(body: dict):
    pending: list[str] = []
    for i, m in enumerate(body.get("messages") or ()):
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in pending:
                return (
                    ("Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."),
                    f"messages.[{i}].role",
                    None,
                )
            pending.remove(call_id)
            continue
        if pending:
            return (
                ("An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}"),
                f"messages.[{i}].role",
                None,
            )
        if role == "assistant":
            pending = [c.get("id") for c in m.get("tool_calls") or () if isinstance(c, dict)]
    return None


def response_format(body: dict):
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        texts = [openai_parts(m.get("content"))[0] for m in body.get("messages") or ()
                 if isinstance(m, dict)]
        if not any("json" in t.lower() for t in texts):
            return (("'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'."), "messages", None)
        return None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not NAME_RE.match(str(spec.get("name", ""))):
            return (("Invalid 'response_format.json_schema.name': string does not match "
                    "pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."),
                    "response_format.json_schema.name", "invalid_value")
        problem = _schema_problem(spec.get("schema", {}), spec.get("strict") is True)
        if problem:
            return (f"Invalid schema for response_format '{spec['name']}': {problem}",
                    "response_format", "invalid_json_schema")
        return None
    if kind != "text":
        return ((f"Invalid value: '{kind}'. Supported values are: 'json_object', "
                "'json_schema', and 'text'."), "response_format.type", "invalid_value")
    return None


def image_urls(body: dict):
    for i, m in enumerate(body.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            ok = isinstance(url, str) and (
                url.startswith(("https://", "http://")) or DATA_URL_RE.match(url)
            )
            if not ok:
                return ((f"Invalid image URL: 'messages[{i}].content[{j}].image_url.url'. "
                        "Expected a valid URL or a base64-encoded data URL with an image "
                        "MIME type (e.g. 'data:image/png;base64,...')."),
                        f"messages.[{i}].content.[{j}].image_url.url", "invalid_value")
    return None


CHECKS = [
    ("openai.max_stop", max_stop),
    ("openai.reasoning_params", reasoning_params),
    ("openai.tool_name", tool_name),
    ("openai.tool_name", tool_choice),
    ("openai.tool_schema", tool_schema),
    ("openai.tool_answers", tool_answers),
    ("openai.response_format", response_format),
    ("openai.images", image_urls),
]
NO_VISION = ("Invalid content type. image_url is only supported by certain models.",
             "messages", None)
