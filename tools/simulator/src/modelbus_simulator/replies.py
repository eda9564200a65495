"""Deterministic reply text and token accounting shared by all three wire formats
(reading the prompt out of each format is `prompts`).

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
    note: str = "",
) -> Reply:
    """The scripted reply, else ``"[{model}] {note}"`` + the echoed words, cut at max tokens."""
    if scripted is not None:
        text = scripted
    else:
        words = last_user.split()[:ECHO_WORDS]
        text = f"[{model}] {note}" + (" ".join(words) if words else "ok")
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
