"""Deterministic reply text and token accounting shared by all three wire formats.

A "token" is a whitespace-separated word.  The default reply is
``"[{model}] " + <first ECHO_WORDS words of the last user message>``; a behaviour
may script a fixed `reply` instead.  `make_reply` applies the caller's max-tokens cap
and reports whether it cut the text; `split_chunks` cuts a reply into stream pieces
that concatenate back to the exact text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ECHO_WORDS = 8
_CHUNK_RE = re.compile(r"\s*\S+\s*")


def count_words(text: str) -> int:
    return len(text.split())


@dataclass(slots=True)
class Reply:
    text: str
    output_tokens: int
    input_tokens: int
    cut: bool  # True when max tokens cut the reply


def make_reply(
    model: str,
    last_user: str,
    scripted: str | None,
    max_tokens: int | None,
    input_tokens: int,
) -> Reply:
    if scripted is not None:
        text = scripted
    else:
        words = last_user.split()[:ECHO_WORDS]
        text = f"[{model}] " + (" ".join(words) if words else "ok")
    words = text.split()
    cut = False
    if max_tokens is not None and max_tokens >= 0 and len(words) > max_tokens:
        words = words[:max_tokens]
        text = " ".join(words)
        cut = True
    return Reply(text=text, output_tokens=len(words), input_tokens=max(1, input_tokens), cut=cut)


def split_chunks(text: str) -> list[str]:
    """Pieces of roughly one word each; ``"".join(pieces) == text``."""
    pieces = _CHUNK_RE.findall(text)
    if "".join(pieces) != text:  # only whitespace, or something regex-unfriendly
        return [text] if text else []
    return pieces


def truncated_chunks(pieces: list[str]) -> list[str]:
    """A strict, non-empty-when-possible prefix of `pieces` for the truncate fault."""
    if len(pieces) >= 2:
        return pieces[: len(pieces) // 2]
    if pieces and len(pieces[0]) >= 2:
        return [pieces[0][: len(pieces[0]) // 2]]
    return []


def _text_of(content: object) -> str:
    """Text of an OpenAI/Anthropic message content: a string or a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for block in content:
            if isinstance(block, dict):
                t = block.get("text")
                if isinstance(t, str):
                    out.append(t)
                elif isinstance(block.get("content"), (str, list)):  # tool_result
                    out.append(_text_of(block["content"]))
            elif isinstance(block, str):
                out.append(block)
        return " ".join(out)
    return ""


def chat_prompt(messages: list, system: object = None) -> tuple[str, int]:
    """(last user text, input word count) for OpenAI/Anthropic style message lists."""
    total = count_words(_text_of(system)) if system is not None else 0
    last_user = ""
    for m in messages:
        if not isinstance(m, dict):
            continue
        text = _text_of(m.get("content"))
        total += count_words(text)
        if m.get("role") == "user":
            last_user = text
    return last_user, total


def gemini_prompt(contents: list, system: object = None) -> tuple[str, int]:
    """(last user text, input word count) for Gemini `contents` + `systemInstruction`."""

    def parts_text(c: object) -> str:
        if isinstance(c, dict):
            parts = c.get("parts") or []
            return " ".join(
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        if isinstance(c, str):
            return c
        return ""

    total = count_words(parts_text(system)) if system is not None else 0
    last_user = ""
    for c in contents:
        text = parts_text(c)
        total += count_words(text)
        if not isinstance(c, dict) or c.get("role", "user") == "user":
            last_user = text
    return last_user, total
