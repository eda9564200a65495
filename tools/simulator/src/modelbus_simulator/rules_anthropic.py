"""Anthropic Messages request rules.  Each check returns ``(message, param)`` -- the
message the real API answers with -- or None.  Sources (ids in `rules.RULES`):

* non-empty content, except an optional final assistant turn; `temperature` within 0..1:
  https://docs.anthropic.com/en/api/messages
* each `tool_use` is answered by a `tool_result` in the next (user) message, and each
  `tool_result` answers a `tool_use` of the previous message; tool names match
  ``^[a-zA-Z0-9_-]{1,64}$`` and `input_schema` is a JSON Schema:
  https://docs.anthropic.com/en/docs/build-with-claude/tool-use
* `output_config.format` `{type: json_schema, schema}` is a JSON Schema:
  https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs
* image blocks: base64 with media type image/jpeg|png|gif|webp, or a URL source:
  https://docs.anthropic.com/en/docs/build-with-claude/vision
* first turn a user turn, roles alternating: the current reference says consecutive turns
  "will be combined into a single turn" and no longer requires a leading user turn
  (https://docs.anthropic.com/en/api/messages, `messages`), so these two are off by default;
  switch them on to mimic older API versions and Bedrock, which still refuse
  (https://github.com/anthropics/anthropic-sdk-typescript/issues/622).
"""

from __future__ import annotations

import re

from . import schemagen

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _messages(body: dict):
    for i, m in enumerate(body.get("messages") or ()):
        if isinstance(m, dict):
            yield i, m


def _blocks(m: dict) -> list:
    content = m.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def non_empty(body: dict):
    msgs = list(_messages(body))
    for n, (i, m) in enumerate(msgs):
        content = m.get("content")
        final_assistant = n == len(msgs) - 1 and m.get("role") == "assistant"
        if content in ("", []) and not final_assistant:
            return ((f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"), f"messages.{i}.content")
        for j, block in enumerate(_blocks(m)):
            if block.get("type") == "text" and not block.get("text"):
                return ("messages: text content blocks must be non-empty",
                        f"messages.{i}.content.{j}")
    return None


def temperature(body: dict):
    t = body.get("temperature")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1):
        return ("temperature: range: 0..1", "temperature")
    return None


def tool_pairs(body: dict):
    open_ids: list[str] = []
    for i, m in _messages(body):
        blocks = _blocks(m)
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if open_ids:
            missing = [x for x in open_ids if x not in results]
            if m.get("role") != "user" or missing:
                return ((f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(missing or open_ids)}. Each `tool_use` "
                        "block must have a corresponding `tool_result` block in the next message."),
                        f"messages.{i}")
        for j, rid in enumerate(results):
            if rid not in open_ids:
                return ((f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {rid}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."),
                        f"messages.{i}.content.{j}")
        open_ids = [b.get("id") for b in blocks if b.get("type") == "tool_use"]
    return None


def tool_name(body: dict):
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            continue  # server tools (web_search, ...) have fixed names
        if not NAME_RE.match(str(tool.get("name", ""))):
            return ((f"tools.{i}.custom.name: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,64}$'"), f"tools.{i}.name")
        schema = tool.get("input_schema")
        try:
            schemagen.check_schema(schema)
        except schemagen.SchemaError as exc:
            return (f"tools.{i}.custom.input_schema: JSON schema is invalid: {exc}",
                    f"tools.{i}.input_schema")
        if schema.get("type") != "object":
            return (f"tools.{i}.custom.input_schema.type: Input should be 'object'",
                    f"tools.{i}.input_schema.type")
    return None


def images(body: dict):
    for i, m in _messages(body):
        for j, block in enumerate(_blocks(m)):
            if block.get("type") != "image":
                continue
            src = block.get("source") if isinstance(block.get("source"), dict) else {}
            where = f"messages.{i}.content.{j}.image.source"
            if src.get("type") == "base64":
                if src.get("media_type") not in MEDIA_TYPES:
                    return ((f"{where}.base64.media_type: Input should be 'image/jpeg', "
                            "'image/png', 'image/gif' or 'image/webp'"), where)
                if not src.get("data"):
                    return (f"{where}.base64.data: Field required", where)
            elif src.get("type") == "url":
                if not str(src.get("url", "")).startswith(("https://", "http://")):
                    return (f"{where}.url.url: Input should be a valid URL", where)
            else:
                return ((f"{where}: Input tag '{src.get('type')}' found using 'type' does not "
                        "match any of the expected tags: 'base64', 'url', 'file'"), where)
    return None


def first_user(body: dict):
    msgs = body.get("messages") or []
    if msgs and isinstance(msgs[0], dict) and msgs[0].get("role") != "user":
        return ('messages: first message must use the "user" role', "messages.0.role")
    return None


def alternating_roles(body: dict):
    previous = None
    for i, m in _messages(body):
        if m.get("role") == previous:
            return ((f'messages: roles must alternate between "user" and "assistant", but found '
                    f'multiple "{previous}" roles in a row'), f"messages.{i}.role")
        previous = m.get("role")
    return None


def output_format(body: dict):
    fmt = output_schema_spec(body)
    if fmt is None:
        return None
    try:
        schemagen.check_schema(fmt.get("schema"))
    except schemagen.SchemaError as exc:
        return (f"output_config.format.schema: JSON schema is invalid: {exc}",
                "output_config.format.schema")
    return None


def output_schema_spec(body: dict) -> dict | None:
    """`output_config.format` (or the older beta `output_format`) when it asks for JSON."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    return fmt if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None


CHECKS = [
    ("anthropic.first_user", first_user),
    ("anthropic.alternating_roles", alternating_roles),
    ("anthropic.non_empty", non_empty),
    ("anthropic.temperature", temperature),
    ("anthropic.tool_name", tool_name),
    ("anthropic.output_format", output_format),
    ("anthropic.tool_pairs", tool_pairs),
    ("anthropic.images", images),
]
NO_VISION = ("messages: this model does not support image input", "messages")
