"""What a request asks, read from each wire format into one provider-neutral `Prompt`.

`Prompt` holds the last user text, the input word count, how many images arrived, and --
when the conversation ends with a tool result -- that result's text and tool name.
`openai_prompt`, `anthropic_prompt` and `gemini_prompt` read the three message shapes
(string or part-list content, `tool` / `tool_result` / `functionResponse` turns, images as
`image_url`, `image` blocks, `inlineData`/`fileData`).  Validation lives in the rules
modules; these readers are lenient and never raise on odd shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class Prompt:
    last_user: str = ""
    input_words: int = 0
    images: int = 0
    tool_result: str | None = None  # set when the last turn answers a tool call
    tool_name: str | None = None


def _words(text: str) -> int:
    return len(text.split())


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


# -- OpenAI / self-hosted ------------------------------------------------------------
def openai_parts(content: object) -> tuple[str, int]:
    """(text, image count) of an OpenAI message content: a string or a list of parts."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            images += 1
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return " ".join(texts), images


def openai_prompt(messages: list) -> Prompt:
    p = Prompt()
    names: dict[str, str] = {}  # tool_call id -> function name
    for m in messages:
        if not isinstance(m, dict):
            continue
        text, images = openai_parts(m.get("content"))
        p.input_words += _words(text)
        p.images += images
        for call in m.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[str(call.get("id"))] = str(call["function"].get("name"))
                p.input_words += _words(str(call["function"].get("arguments", "")))
        role = m.get("role")
        if role == "user":
            p.last_user, p.tool_result, p.tool_name = text, None, None
        elif role == "tool":
            p.tool_result, p.tool_name = text, names.get(str(m.get("tool_call_id")))
        elif role == "assistant":
            p.tool_result = p.tool_name = None
    return p


# -- Anthropic -----------------------------------------------------------------------
def anthropic_blocks(content: object) -> tuple[str, int, list[dict]]:
    """(text, image count, tool_result blocks) of an Anthropic message content."""
    if isinstance(content, str):
        return content, 0, []
    texts, images, results = [], 0, []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "image":
            images += 1
        elif kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            texts.append(_as_text(block.get("input", {})))
        elif kind == "tool_result":
            results.append(block)
            inner, inner_images, _ = anthropic_blocks(block.get("content", ""))
            texts.append(inner)
            images += inner_images
    return " ".join(texts), images, results


def anthropic_prompt(messages: list, system: object = None) -> Prompt:
    p = Prompt()
    if system is not None:
        p.input_words += _words(anthropic_blocks(system)[0])
    names: dict[str, str] = {}
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        text, images, results = anthropic_blocks(content)
        p.input_words += _words(text)
        p.images += images
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
        if m.get("role") != "user":
            p.tool_result = p.tool_name = None
        elif results:
            p.tool_result = anthropic_blocks(results[-1].get("content", ""))[0]
            p.tool_name = names.get(str(results[-1].get("tool_use_id")))
        else:
            p.last_user, p.tool_result, p.tool_name = text, None, None
    return p


# -- Gemini --------------------------------------------------------------------------
def gemini_part(part: dict, key: str) -> object:
    """A part's field under its camelCase or snake_case name (both are accepted)."""
    if key in part:
        return part[key]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
    return part.get(snake)


def gemini_is_image(part: dict) -> bool:
    blob = gemini_part(part, "inlineData") or gemini_part(part, "fileData")
    if not isinstance(blob, dict):
        return False
    mime = gemini_part(blob, "mimeType")
    return not isinstance(mime, str) or mime.startswith("image/")


def gemini_prompt(contents: list, system: object = None) -> Prompt:
    p = Prompt()

    def read(content: object) -> tuple[str, int, list[dict]]:
        if isinstance(content, str):
            return content, 0, []
        parts = content.get("parts") if isinstance(content, dict) else None
        texts, images, responses = [], 0, []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif gemini_is_image(part):
                images += 1
            elif isinstance(gemini_part(part, "functionResponse"), dict):
                responses.append(gemini_part(part, "functionResponse"))
                texts.append(_as_text(responses[-1].get("response", {})))
            elif isinstance(gemini_part(part, "functionCall"), dict):
                texts.append(_as_text(gemini_part(part, "functionCall").get("args", {})))
        return " ".join(texts), images, responses

    if system is not None:
        p.input_words += _words(read(system)[0])
    for c in contents:
        text, images, responses = read(c)
        p.input_words += _words(text)
        p.images += images
        role = c.get("role", "user") if isinstance(c, dict) else "user"
        if role == "model":
            p.tool_result = p.tool_name = None
        elif responses:
            p.tool_result = _as_text(responses[-1].get("response", {}))
            p.tool_name = str(responses[-1].get("name"))
        else:
            p.last_user, p.tool_result, p.tool_name = text, None, None
    return p
