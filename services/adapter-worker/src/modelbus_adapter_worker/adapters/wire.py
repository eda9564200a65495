"""Pieces every wire format needs the same way: images as inline bytes or URLs, tool-call
arguments as JSON objects, stable ids for calls that come without one, the instruction that
asks for a JSON answer where a provider has no native switch for it, and the placeholder
turns the normalisation inserts (docs/providers.md lists where each is used)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, NoReturn

import orjson
from modelbus_schemas import ChatMessage
from modelbus_schemas.content import ContentPart, ImagePart, ResponseFormat, TextPart, ToolCall

# A turn inserted where a provider needs a user turn the conversation does not have (a
# conversation that starts with the assistant; a message whose every part was empty).
LEADING_USER_TURN = "(conversation start)"
EMPTY_TURN = "(empty message)"


def present(**fields: Any) -> dict[str, Any]:
    """The fields that have a value (a wire body leaves unset parameters out)."""
    return {name: value for name, value in fields.items() if value is not None}


def wire_stops(stops: list[str] | None, limit: int | None = None, *,
               blank_ok: bool = True) -> list[str] | None:
    """The stop sequences a provider is sent: no empty ones (nor whitespace-only ones where
    ``blank_ok`` is false), at most ``limit``; the rest are enforced on the output
    (:mod:`modelbus_adapter_worker.answer`). None when none is left."""
    kept = [s for s in stops or () if (s.strip() if not blank_ok else s)]
    return kept[:limit] or None


def merged_turns(turns: Iterable[tuple[str, list[dict]]], key: str) -> list[dict]:
    """``{"role": role, key: items}`` turns with consecutive turns of one role merged into
    one, and turns without items dropped (Anthropic's and Gemini's role rules)."""
    merged: list[dict] = []
    for role, items in turns:
        if not items:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1][key].extend(items)
        else:
            merged.append({"role": role, key: list(items)})
    return merged


def content_parts(message: ChatMessage) -> list[str | ContentPart]:
    """The message's parts with text as plain strings (no part model is built for string
    content: this is the hot path of every request build)."""
    if message.content is None:
        return []
    if isinstance(message.content, str):
        return [message.content]
    return [p.text if isinstance(p, TextPart) else p for p in message.content]


def unresolved(part: object) -> NoReturn:
    """A part no wire format has (a claim-check reference the worker did not resolve)."""
    raise ValueError(f"a {type(part).__name__} cannot be sent to a provider unresolved")


def split_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` → (``image/png``, ``AAAA``); None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    media_type, _, encoding = head.partition(";")
    if not sep or encoding != "base64":
        raise ValueError("an image data URL must be base64 encoded")
    return media_type, data


def inline_image(part: ImagePart) -> tuple[str, str] | None:
    """(media type, base64 data) of an image sent inline (base64 or a data URL); None when
    the provider is to fetch it by URL."""
    if part.data is not None:
        return part.media_type or "", "".join(part.data.split())
    return split_data_url(part.url or "")


def data_url(part: ImagePart) -> str:
    if part.url is not None:
        return part.url
    return f"data:{part.media_type};base64,{''.join((part.data or '').split())}"


def url_media_type(url: str) -> str | None:
    """The image type a URL's file extension names, if any (Gemini's ``fileData``)."""
    path = url.split("?", 1)[0].lower()
    for ext, media in ((".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"),
                       (".gif", "image/gif"), (".webp", "image/webp")):
        if path.endswith(ext):
            return media
    return None


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the JSON object Anthropic (``input``) and Gemini (``args``)
    carry; arguments that are not a JSON object are kept under ``value``."""
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return {"value": call.arguments}
    return value if isinstance(value, dict) else {"value": value}


def result_object(text: str) -> dict[str, Any]:
    """A tool turn's answer as a JSON object (Gemini's ``functionResponse.response``): the
    answer itself when it is a JSON object, else ``{"result": <answer>}``."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def stable_call_id(prefix: str, index: int, name: str, arguments: str) -> str:
    """An id for a call the provider gave none (Gemini): the same answer always gets the
    same ids, so a redelivered task yields an identical result."""
    digest = hashlib.sha256(f"{index}:{name}:{arguments}".encode()).hexdigest()[:16]
    return f"{prefix}_{index}_{digest}"


def json_instruction(fmt: ResponseFormat) -> str:
    """What a model is told when its provider's JSON switch cannot be used for this request
    (Anthropic or Gemini with tools also offered)."""
    if fmt.json_schema is not None:
        schema = dumps(fmt.json_schema.schema_)
        return ("Answer with a single JSON value that validates against this JSON Schema, "
                f"and nothing else:\n{schema}")
    return "Answer with a single JSON object and nothing else."
